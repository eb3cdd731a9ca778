//! The broker side of the mail tests: the RabbitMQ of this machine with queue names of the
//! test's own (deleted with it), and a TCP proxy that can cut the service off from the
//! broker and let it back.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use uuid::Uuid;
use workers::mail::rabbit::RabbitConfig;

/// The RabbitMQ the tests use: `AMQP_URL`, or the local server's default account.
pub fn amqp_url() -> String {
    std::env::var("AMQP_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

/// Queue names of their own for one test, on the tests' RabbitMQ (checked reachable). Its
/// queues and exchanges are deleted when it is dropped, whether the test passed or failed.
pub async fn rabbit(url: &str) -> TestQueues {
    let config = RabbitConfig {
        url: url.to_owned(),
        prefix: format!("test.mail.{}", Uuid::new_v4().simple()),
    };
    if let Err(error) = config.connect().await {
        panic!(
            "RabbitMQ is not reachable at {url} ({error}). Start it with `rabbitmq-server -detached` \
             or point AMQP_URL at one."
        );
    }
    TestQueues(config)
}

/// One test's RabbitMQ queue names ([`rabbit`]), deleted with it.
pub struct TestQueues(RabbitConfig);

impl std::ops::Deref for TestQueues {
    type Target = RabbitConfig;

    fn deref(&self) -> &RabbitConfig {
        &self.0
    }
}

impl Drop for TestQueues {
    fn drop(&mut self) {
        // Drop cannot wait on the test's runtime (it may be unwinding, or gone): a thread
        // of its own deletes them.
        let config = self.0.clone();
        let deleted = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(config.delete_topology())
        })
        .join();
        // A test that passed fails for what it left behind; one already failing says why.
        if !matches!(deleted, Ok(Ok(()))) && !std::thread::panicking() {
            panic!("could not delete the test's RabbitMQ queues: {deleted:?}");
        }
    }
}

/// A TCP proxy to `target` that can be cut (every connection closed, new ones refused)
/// and restored: the broker "unreachable for a while".
pub struct TcpProxy {
    /// Where clients connect.
    pub address: SocketAddr,
    open: Arc<AtomicBool>,
    generation: watch::Sender<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl TcpProxy {
    /// Starts forwarding to `target`.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy port");
        let address = listener.local_addr().expect("proxy address");
        let open = Arc::new(AtomicBool::new(true));
        let (generation, _) = watch::channel(0u64);
        let cuts = generation.clone();
        let is_open = open.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    continue;
                };
                if !is_open.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let mut cut = cuts.subscribe();
                tokio::spawn(async move {
                    let Ok(mut upstream) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Self {
            address,
            open,
            generation,
            task,
        }
    }

    /// Closes every connection and refuses new ones.
    pub fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
    }

    /// Accepts connections again.
    pub fn restore(&self) {
        self.open.store(true, Ordering::SeqCst);
    }

    /// An AMQP URL through this proxy, from the direct one.
    pub fn amqp_url(&self, direct: &str) -> String {
        let (scheme, rest) = direct.split_once("://").expect("an amqp:// URL");
        let (credentials, after) = match rest.rsplit_once('@') {
            Some((c, a)) => (format!("{c}@"), a),
            None => (String::new(), rest),
        };
        let path = after.find('/').map_or("", |i| &after[i..]);
        format!("{scheme}://{credentials}{}{path}", self.address)
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The broker's address in an AMQP URL.
pub fn amqp_address(url: &str) -> SocketAddr {
    use std::net::ToSocketAddrs;
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let host = host.split('/').next().unwrap_or(host);
    let host = if host.contains(':') {
        host.to_owned()
    } else {
        format!("{host}:5672")
    };
    host.to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .unwrap_or_else(|| panic!("cannot resolve the broker address in {url}"))
}
