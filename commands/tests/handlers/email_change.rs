//! A change of address is three appends on two streams (reserve the new address, move the
//! account, release the old one). A crash between them leaves a reservation its holder no
//! longer claims: the next claimant takes it over, and it signs nobody in.

use super::{Fixture, ctx, fixture, registration};
use commands::accounts::{ChangeEmail, SignIn};
use commands::{Clock, CommandError, Executor, SystemClock};
use domain::AccountId;
use domain::Aggregate;
use domain::email::EmailAddress;
use domain::reservation::{EmailReservation, ReservationCommand};
use domain::session::SessionOrigin;

const PASSWORD: &str = "correct-horse-7-battery";

fn sign_in(email: &str) -> SignIn {
    SignIn {
        email: email.into(),
        password: PASSWORD.into(),
        second_factor: None,
        origin: SessionOrigin::default(),
    }
}

/// What a crash mid-change leaves: `email` reserved for `holder`, nothing else written.
async fn reserve_behind_its_back(f: &Fixture, email: &str, holder: AccountId) {
    let stream = f.email_index.stream(&EmailAddress::parse(email).unwrap());
    let at = SystemClock.now();
    Executor::new(f.log.clone(), f.codec.clone())
        .execute::<EmailReservation, _>(&stream, &ctx(), None, at, |state| {
            Ok(state.decide(&ReservationCommand::Reserve {
                account_id: holder,
                holder_abandoned: true,
                at,
            })?)
        })
        .await
        .unwrap();
}

/// Asks `account`'s change to `new_email` from a fresh session; the link's generation.
async fn ask(f: &Fixture, from: &str, new_email: &str) -> (AccountId, u32) {
    let session = f.accounts.sign_in(&ctx(), sign_in(from)).await.unwrap();
    let change = ChangeEmail {
        new_email: new_email.into(),
        password: PASSWORD.into(),
    };
    f.accounts
        .request_email_change(&ctx(), session.account_id, session.session_id, change)
        .await
        .unwrap();
    let account = f.accounts.account(session.account_id).await.unwrap();
    (session.account_id, account.email_change.generation)
}

#[tokio::test]
async fn an_address_reserved_for_a_change_never_made_is_taken_over() {
    let f = fixture().await;
    f.accounts
        .register(&ctx(), registration("ada@example.com"))
        .await
        .unwrap();
    let (ada, _) = ask(&f, "ada@example.com", "ada@new.example").await;
    // The confirmation reserved the address and stopped there.
    reserve_behind_its_back(&f, "ada@new.example", ada).await;

    // While the change's link lives, its confirmation may be running: the address is held.
    let held = f
        .accounts
        .register(&ctx(), registration("ada@new.example"))
        .await;
    assert!(matches!(held, Err(CommandError::EmailTaken)), "{held:?}");
    // It signs nobody in.
    let refused = f.accounts.sign_in(&ctx(), sign_in("ada@new.example")).await;
    assert!(matches!(refused, Err(CommandError::InvalidCredentials)));

    // Withdrawn, the change no longer claims it.
    f.accounts.cancel_email_change(&ctx(), ada).await.unwrap();
    let (other, _) = f
        .accounts
        .register(&ctx(), registration("ada@new.example"))
        .await
        .unwrap();
    let found = f.accounts.sign_in(&ctx(), sign_in("ada@new.example")).await;
    assert_eq!(found.unwrap().account_id, other);
}

#[tokio::test]
async fn an_old_address_a_change_did_not_release_is_taken_over_and_signs_nobody_in() {
    let f = fixture().await;
    let (ada, _) = f
        .accounts
        .register(&ctx(), registration("ada@example.com"))
        .await
        .unwrap();
    let (_, generation) = ask(&f, "ada@example.com", "ada@new.example").await;
    let token = f.links.email_change.token(ada, generation);
    let (moved, position) = f
        .accounts
        .confirm_email_change(&ctx(), &token)
        .await
        .unwrap();
    assert_eq!(moved, ada);
    assert!(position.is_some());
    let account = f.accounts.account(ada).await.unwrap();
    assert_eq!(account.email, EmailAddress::parse("ada@new.example").ok());

    // The release never happened: the old address is still reserved for the account.
    reserve_behind_its_back(&f, "ada@example.com", ada).await;
    let old = EmailAddress::parse("ada@example.com").unwrap();
    assert_eq!(f.accounts.holder_of(&old).await.unwrap(), Some(ada));
    assert_eq!(f.accounts.account_with_address(&old).await.unwrap(), None);
    let refused = f.accounts.sign_in(&ctx(), sign_in("ada@example.com")).await;
    assert!(matches!(refused, Err(CommandError::InvalidCredentials)));
    assert_eq!(
        f.accounts
            .sign_in(&ctx(), sign_in("ada@new.example"))
            .await
            .unwrap()
            .account_id,
        ada
    );
    let (other, _) = f
        .accounts
        .register(&ctx(), registration("ada@example.com"))
        .await
        .unwrap();
    assert_ne!(other, ada);

    // The link opened again changes nothing, and the new address stays the account's.
    let again = f
        .accounts
        .confirm_email_change(&ctx(), &token)
        .await
        .unwrap();
    assert_eq!(again, (ada, None));
    let taken = f
        .accounts
        .register(&ctx(), registration("ada@new.example"))
        .await;
    assert!(matches!(taken, Err(CommandError::EmailTaken)), "{taken:?}");
}
