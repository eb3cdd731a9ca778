//! A real SMTP server over TCP for the mail tests (the `mailin` crate's SMTP sessions,
//! keeping each message it accepts), and reading a header of what it received. The broker
//! side is in `broker`.

use mailin::{Action, Handler, Response, SessionBuilder};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufStream};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::time::Instant;

/// A real SMTP server on a port of its own, over TCP: the SMTP session (parsing, state
/// machine, replies) is the `mailin` crate's, served by a runtime on a thread of its own.
/// It keeps every message it accepted (it replies `250` to the final `.` only once the
/// message is kept), across [`SmtpServer::down`] and [`SmtpServer::up`].
pub struct SmtpServer {
    /// Its port.
    pub port: u16,
    inbox: Inbox,
    running: Option<Running>,
}

/// The messages received, as raw text.
type Inbox = Arc<Mutex<Vec<String>>>;

/// A server that is up: its thread, and how to stop it.
struct Running {
    stop: oneshot::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl SmtpServer {
    /// Starts it on a free port; it accepts connections when this returns.
    pub async fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a port for SMTP");
        let port = listener.local_addr().expect("the SMTP address").port();
        let inbox = Inbox::default();
        let running = Some(serve(listener, inbox.clone()));
        Self {
            port,
            inbox,
            running,
        }
    }

    /// `smtp://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Starts the server again on the same port, keeping the messages received so far.
    pub async fn up(&mut self) {
        if self.running.is_some() {
            return;
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        let listener = loop {
            match std::net::TcpListener::bind(("127.0.0.1", self.port)) {
                Ok(listener) => break listener,
                Err(error) => assert!(
                    Instant::now() < deadline,
                    "cannot listen on port {} again: {error}",
                    self.port
                ),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        self.running = Some(serve(listener, self.inbox.clone()));
    }

    /// Stops the server: when this returns, every connection is closed and new ones are
    /// refused until [`SmtpServer::up`].
    pub fn down(&mut self) {
        if let Some(running) = self.running.take() {
            let _ = running.stop.send(());
            running.thread.join().expect("the SMTP server stops");
        }
    }

    /// Every message received, as raw text.
    pub fn messages(&self) -> Vec<String> {
        self.inbox.lock().expect("the SMTP inbox").clone()
    }

    /// Messages received, by `Message-ID`.
    pub fn by_message_id(&self) -> HashMap<String, usize> {
        let mut counts = HashMap::new();
        for message in self.messages() {
            *counts
                .entry(header(&message, "Message-ID").unwrap_or_default())
                .or_default() += 1;
        }
        counts
    }

    /// Waits until at least `count` messages arrived, then a little longer so that any
    /// duplicate would have arrived too; returns them.
    pub async fn wait_for(&self, count: usize, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let messages = self.messages();
            if messages.len() >= count {
                tokio::time::sleep(Duration::from_millis(1500)).await;
                return self.messages();
            }
            assert!(
                Instant::now() < deadline,
                "only {} of {count} e-mails arrived within {timeout:?}",
                messages.len()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.down();
    }
}

/// Serves SMTP on `listener` until told to stop; then the listener and every connection
/// still open are closed (the runtime that owns them is dropped) before the thread ends.
fn serve(listener: std::net::TcpListener, inbox: Inbox) -> Running {
    let (stop, stopped) = oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name(format!(
            "smtp-{}",
            listener.local_addr().map_or(0, |a| a.port())
        ))
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for the SMTP server");
            runtime.block_on(async move {
                listener
                    .set_nonblocking(true)
                    .expect("a non-blocking listener");
                let listener = TcpListener::from_std(listener).expect("the SMTP listener");
                let accepting = async {
                    loop {
                        match listener.accept().await {
                            Ok((socket, peer)) => {
                                tokio::spawn(converse(socket, peer.ip(), inbox.clone()));
                            }
                            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                        }
                    }
                };
                tokio::select! {
                    _ = stopped => {}
                    () = accepting => {}
                }
            });
            // Dropping the runtime drops every conversation: their connections close.
            drop(runtime);
        })
        .expect("a thread for the SMTP server");
    Running { stop, thread }
}

/// One SMTP connection: each line the client sends goes to the session, whose replies go
/// back, until the client quits or hangs up.
async fn converse(socket: TcpStream, peer: IpAddr, inbox: Inbox) -> std::io::Result<()> {
    let mut session = SessionBuilder::new("smtp.test").build(
        peer,
        Mailbox {
            inbox,
            message: Vec::new(),
        },
    );
    let mut stream = BufStream::new(socket);
    reply(&mut stream, &session.greeting()).await?;
    let mut line = Vec::new();
    loop {
        line.clear();
        if stream.read_until(b'\n', &mut line).await? == 0 {
            return Ok(());
        }
        let response = session.process(&line);
        match response.action {
            Action::Reply => reply(&mut stream, &response).await?,
            // No STARTTLS is offered, so an upgrade is never agreed to; close all the same.
            Action::Close | Action::UpgradeTls => {
                reply(&mut stream, &response).await?;
                return Ok(());
            }
            Action::NoReply => {}
        }
    }
}

async fn reply(stream: &mut BufStream<TcpStream>, response: &Response) -> std::io::Result<()> {
    stream.write_all(&response.buffer()?).await?;
    stream.flush().await
}

/// What the server does with the mail of one connection: keep each message whole.
struct Mailbox {
    inbox: Inbox,
    message: Vec<u8>,
}

impl Handler for Mailbox {
    fn data_start(
        &mut self,
        _domain: &str,
        _from: &str,
        _is8bit: bool,
        _to: &[String],
    ) -> Response {
        self.message.clear();
        mailin::response::OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.message.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        let message = String::from_utf8_lossy(&std::mem::take(&mut self.message)).into_owned();
        self.inbox.lock().expect("the SMTP inbox").push(message);
        mailin::response::OK
    }
}

/// The value of header `name` in a raw message (unfolded).
pub fn header(message: &str, name: &str) -> Option<String> {
    let prefix = format!("{}:", name.to_ascii_lowercase());
    let mut lines = message.lines();
    while let Some(line) = lines.next() {
        if line.is_empty() {
            return None;
        }
        if line.to_ascii_lowercase().starts_with(&prefix) {
            let mut value = line[prefix.len()..].trim().to_owned();
            for next in lines.by_ref() {
                if next.starts_with([' ', '\t']) {
                    value.push(' ');
                    value.push_str(next.trim());
                } else {
                    break;
                }
            }
            return Some(value);
        }
    }
    None
}

#[cfg(test)]
mod smtp_server {
    use super::SmtpServer;
    use std::time::Duration;
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufStream};
    use tokio::net::TcpStream;

    /// Sends `line` (unless empty) and returns the reply's last line.
    async fn exchange(stream: &mut BufStream<TcpStream>, line: &str) -> String {
        if !line.is_empty() {
            stream.write_all(line.as_bytes()).await.unwrap();
            stream.flush().await.unwrap();
        }
        loop {
            let mut reply = String::new();
            assert_ne!(stream.read_line(&mut reply).await.unwrap(), 0, "closed");
            // A multi-line reply continues while a '-' follows the code.
            if reply.as_bytes().get(3) != Some(&b'-') {
                return reply;
            }
        }
    }

    #[tokio::test]
    async fn speaks_smtp_keeps_messages_and_goes_down_and_up() {
        let mut server = SmtpServer::start().await;
        let address = ("127.0.0.1", server.port);
        let mut client = BufStream::new(TcpStream::connect(address).await.unwrap());
        assert!(exchange(&mut client, "").await.starts_with("220 "));
        assert!(
            exchange(&mut client, "EHLO client.test\r\n")
                .await
                .starts_with("250 ")
        );
        assert!(
            exchange(&mut client, "DATA\r\n").await.starts_with("503 "),
            "no sender yet"
        );
        for command in ["MAIL FROM:<a@client.test>\r\n", "RCPT TO:<b@smtp.test>\r\n"] {
            assert!(exchange(&mut client, command).await.starts_with("250 "));
        }
        assert!(exchange(&mut client, "DATA\r\n").await.starts_with("354 "));
        let body = "Subject: Hi\r\nMessage-ID: <1@client.test>\r\n\r\n..dotted\r\n.\r\n";
        assert!(exchange(&mut client, body).await.starts_with("250 "));
        assert_eq!(
            server.messages(),
            ["Subject: Hi\r\nMessage-ID: <1@client.test>\r\n\r\n.dotted\r\n"]
        );

        // Down: the open connection is closed and new ones are refused.
        server.down();
        let mut rest = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut rest))
            .await
            .expect("the connection is closed, not left hanging");
        assert!(read.map_or(true, |n| n == 0), "{rest:?}");
        assert!(
            TcpStream::connect(address).await.is_err(),
            "refused while down"
        );

        // Up again on the same port, with what it had received.
        server.up().await;
        let mut client = BufStream::new(TcpStream::connect(address).await.unwrap());
        assert!(exchange(&mut client, "").await.starts_with("220 "));
        assert!(exchange(&mut client, "QUIT\r\n").await.starts_with("221 "));
        assert_eq!(server.messages().len(), 1);
        assert_eq!(server.by_message_id()["<1@client.test>"], 1);
    }
}
