//! Rendering e-mails from the templates in `templates/mail/` (compiled into the binary):
//! each has a `subject`, a plain-text and an HTML block. The HTML block is escaped as
//! HTML, the others are not.

use lettre::Message;
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use minijinja::{AutoEscape, Environment};

const TEMPLATES: &[(&str, &str)] = &[
    (
        "generation_complete",
        include_str!("../../../templates/mail/generation_complete.jinja"),
    ),
    (
        "credits_low",
        include_str!("../../../templates/mail/credits_low.jinja"),
    ),
    (
        "billing_receipt",
        include_str!("../../../templates/mail/billing_receipt.jinja"),
    ),
    (
        "security_notice",
        include_str!("../../../templates/mail/security_notice.jinja"),
    ),
    (
        "campaign",
        include_str!("../../../templates/mail/campaign.jinja"),
    ),
    (
        "workspace_invitation",
        include_str!("../../../templates/mail/workspace_invitation.jinja"),
    ),
    (
        "email_verification",
        include_str!("../../../templates/mail/email_verification.jinja"),
    ),
    (
        "password_reset",
        include_str!("../../../templates/mail/password_reset.jinja"),
    ),
    (
        "email_change",
        include_str!("../../../templates/mail/email_change.jinja"),
    ),
    (
        "email_changed",
        include_str!("../../../templates/mail/email_changed.jinja"),
    ),
    (
        "workspace_notice",
        include_str!("../../../templates/mail/workspace_notice.jinja"),
    ),
    (
        "provider_key_notice",
        include_str!("../../../templates/mail/provider_key_notice.jinja"),
    ),
];

/// Why a message could not be rendered (a bug or bad data: not worth retrying).
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The template failed.
    #[error("template: {0}")]
    Template(#[from] minijinja::Error),
    /// The message could not be built (e.g. an invalid address).
    #[error("message: {0}")]
    Message(String),
}

/// A rendered e-mail, before addressing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The subject line.
    pub subject: String,
    /// The plain-text part.
    pub text: String,
    /// The HTML part.
    pub html: String,
}

/// The templates, ready to render.
pub struct Templates {
    plain: Environment<'static>,
    html: Environment<'static>,
}

impl Default for Templates {
    fn default() -> Self {
        Self::new()
    }
}

impl Templates {
    /// Loads the compiled-in templates.
    pub fn new() -> Self {
        let load = |escape: AutoEscape| {
            let mut env = Environment::new();
            env.set_auto_escape_callback(move |_| escape);
            for (name, source) in TEMPLATES {
                env.add_template(name, source)
                    .unwrap_or_else(|e| panic!("mail template {name} does not parse: {e}"));
            }
            env
        };
        Self {
            plain: load(AutoEscape::None),
            html: load(AutoEscape::Html),
        }
    }

    /// Renders `template` with `context`.
    pub fn render(
        &self,
        template: &str,
        context: &serde_json::Value,
    ) -> Result<Rendered, RenderError> {
        let block = |env: &Environment<'static>, name: &str| -> Result<String, RenderError> {
            let mut captured = env.get_template(template)?.render_captured(context)?;
            Ok(captured.with_state_mut(|state| state.render_block(name))?)
        };
        Ok(Rendered {
            subject: block(&self.plain, "subject")?.trim().to_owned(),
            text: block(&self.plain, "text")?.trim_start().to_owned(),
            html: block(&self.html, "html")?,
        })
    }
}

/// Extra parts of a message.
#[derive(Debug, Default)]
pub struct Extras {
    /// `List-Unsubscribe` target (RFC 8058 one-click), for promotional mail.
    pub unsubscribe_url: Option<String>,
    /// A PDF to attach: (file name, bytes).
    pub pdf: Option<(String, Vec<u8>)>,
}

/// Builds the MIME message: text and HTML alternatives, plus any attachment.
pub fn build_message(
    from: &Mailbox,
    to: Mailbox,
    message_id: &str,
    rendered: Rendered,
    extras: Extras,
) -> Result<Message, RenderError> {
    let alternative = MultiPart::alternative()
        .singlepart(
            SinglePart::builder()
                .header(ContentType::TEXT_PLAIN)
                .body(rendered.text),
        )
        .singlepart(
            SinglePart::builder()
                .header(ContentType::TEXT_HTML)
                .body(rendered.html),
        );
    let body = match extras.pdf {
        Some((name, bytes)) => MultiPart::mixed().multipart(alternative).singlepart(
            Attachment::new(name).body(
                bytes,
                ContentType::parse("application/pdf")
                    .map_err(|e| RenderError::Message(e.to_string()))?,
            ),
        ),
        None => alternative,
    };
    let mut message = Message::builder()
        .from(from.clone())
        .to(to)
        .subject(rendered.subject)
        .message_id(Some(format!("<{message_id}@accounts.studio>")))
        .multipart(body)
        .map_err(|e| RenderError::Message(e.to_string()))?;
    if let Some(url) = extras.unsubscribe_url {
        let header = |name: &str, value: String| {
            HeaderName::new_from_ascii(name.to_owned())
                .map(|name| HeaderValue::new(name, value))
                .map_err(|e| RenderError::Message(e.to_string()))
        };
        let headers = message.headers_mut();
        headers.insert_raw(header("List-Unsubscribe", format!("<{url}>"))?);
        headers.insert_raw(header(
            "List-Unsubscribe-Post",
            "List-Unsubscribe=One-Click".to_owned(),
        )?);
    }
    Ok(message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_template_renders_a_subject_text_and_escaped_html() {
        let templates = Templates::new();
        let context = json!({
            "name": "Ada <script>", "settings_url": "https://studio.test/settings",
            "generation_id": "g1", "credits": 12, "balance": 3, "threshold": 20,
            "number": "2026-000001", "total": "9.00 EUR", "headline": "New sign-in",
            "at": "2026-11-22", "detail": "Firefox on Linux", "subject": "News",
            "body": "Hello", "unsubscribe_url": "https://studio.test/u",
            // An invitation names no recipient (perhaps no account yet) but its inviter.
            "inviter": "Ada <script>", "workspace": "Studio", "role": "member",
            "link": "https://studio.test/invitations/inv_x", "expires_at": "3 December 2026",
            "new_email": "a***@new.example"
        });
        for (name, _) in TEMPLATES {
            let rendered = templates.render(name, &context).unwrap();
            assert!(!rendered.subject.is_empty(), "{name}");
            if *name == "email_changed" {
                // To the old address, naming no one: the new address is the message.
                for part in [&rendered.text, &rendered.html] {
                    assert!(part.contains("a***@new.example"), "{part}");
                    assert!(!part.contains("Ada"), "{part}");
                }
                continue;
            }
            if ["email_verification", "password_reset", "email_change"].contains(name) {
                // To an address, naming no one: the link (and its expiry) are the message.
                let text = &rendered.text;
                assert!(
                    text.contains("https://studio.test/invitations/inv_x"),
                    "{text}"
                );
                for part in [text, &rendered.html] {
                    assert!(part.contains("inv_x"), "{name}");
                    // A reset link lasts an hour: it says so, not a date.
                    let date = part.contains("3 December 2026");
                    assert_eq!(date, *name != "password_reset", "{name}");
                }
                continue;
            }
            assert!(
                rendered.text.contains("Ada <script>"),
                "{name}: {}",
                rendered.text
            );
            assert!(
                rendered.html.contains("Ada &lt;script&gt;"),
                "{name}: {}",
                rendered.html
            );
        }
    }

    #[test]
    fn promotional_mail_carries_one_click_unsubscribe_headers() {
        let templates = Templates::new();
        let rendered = templates
            .render("campaign", &json!({"name": "Ada", "subject": "News", "body": "Hi", "unsubscribe_url": "https://s/u?t=1"}))
            .unwrap();
        let message = build_message(
            &"Studio <noreply@studio.test>".parse().unwrap(),
            "Ada <ada@example.com>".parse().unwrap(),
            "m1",
            rendered,
            Extras {
                unsubscribe_url: Some("https://s/u?t=1".into()),
                pdf: None,
            },
        )
        .unwrap();
        let text = String::from_utf8(message.formatted()).unwrap();
        assert!(
            text.contains("List-Unsubscribe: <https://s/u?t=1>"),
            "{text}"
        );
        assert!(text.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"));
        assert!(text.contains("Content-Type: text/plain"));
        assert!(text.contains("Content-Type: text/html"));
        assert!(text.contains("Message-ID: <m1@accounts.studio>"));
    }
}
