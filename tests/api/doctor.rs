//! `accounts doctor` against a running service's storage, as an operator would run it.

use store::Backend;
use tests::spawn_app;

async fn doctor(args: Vec<String>) -> api::cli::Outcome {
    let mut command = vec!["accounts".to_owned(), "doctor".to_owned()];
    command.extend(args);
    api::cli::run_from(command).await.expect("doctor runs")
}

async fn the_doctor_finds_a_healthy_setup_and_names_what_is_wrong(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register("dora@example.com").await;

    let healthy = doctor(app.storage_args.clone()).await;
    assert_eq!(healthy.exit_code, 0, "{}", healthy.stdout);
    assert!(
        healthy.stdout.contains("migrations: all applied"),
        "{}",
        healthy.stdout
    );
    assert!(
        healthy
            .stdout
            .contains("master key opens the stored data keys"),
        "{}",
        healthy.stdout
    );
    assert!(
        healthy.stdout.contains("public URL not set"),
        "{}",
        healthy.stdout
    );

    // Another master key: the data was not written with it.
    let mut wrong_key = app.storage_args.clone();
    let at = wrong_key.iter().position(|a| a == "--master-key").unwrap() + 1;
    wrong_key[at] = vault::MasterKey::generate_base64();
    let mismatch = doctor(wrong_key).await;
    assert_eq!(mismatch.exit_code, 1);
    assert!(
        mismatch
            .stdout
            .contains("master key does not open the stored data keys"),
        "{}",
        mismatch.stdout
    );

    // A broker, an SMTP server and a KurrentDB event store that are not there.
    let mut unreachable = app.storage_args.clone();
    unreachable.extend([
        "--event-store".to_owned(),
        "kurrentdb://admin:kdb-s3cret@127.0.0.1:1?tls=false".to_owned(),
        "--amqp-url".to_owned(),
        "amqp://guest:guest@127.0.0.1:1/%2f".to_owned(),
        "--smtp-url".to_owned(),
        "smtp://127.0.0.1:1".to_owned(),
        "--public-url".to_owned(),
        "https://studio.example".to_owned(),
    ]);
    let down = doctor(unreachable).await;
    assert_eq!(down.exit_code, 1);
    for expected in [
        "PROBLEM  event store kurrentdb://admin:…@127.0.0.1:1",
        "PROBLEM  RabbitMQ",
        "PROBLEM  SMTP",
        "public URL https://studio.example",
    ] {
        assert!(
            down.stdout.contains(expected),
            "{expected}: {}",
            down.stdout
        );
    }
    assert!(!down.stdout.contains(":guest@"), "no password shown");
    assert!(!down.stdout.contains("kdb-s3cret"), "no password shown");
}

on_both_backends!(the_doctor_finds_a_healthy_setup_and_names_what_is_wrong);
