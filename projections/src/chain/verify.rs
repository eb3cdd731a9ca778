//! Verifying the chain: reading the log again from its start, recomputing every link and
//! comparing it with the stored chain, and checking a head published earlier ([`Anchor`]).

use super::{ChainError, ChainHash, ChainHead, PAGE, head, link};
use serde::Serialize;
use std::collections::VecDeque;
use std::str::FromStr;
use store::{Database, EventLog, GlobalPosition, RecordedEvent, StoreError};

/// A head published earlier (`<position>:<hash>`), to compare with the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Anchor {
    /// The position of the event it was the link of.
    pub position: GlobalPosition,
    /// The link published.
    pub hash: ChainHash,
}

impl FromStr for Anchor {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (position, hash) = text
            .split_once(':')
            .ok_or_else(|| "expected <position>:<hash>".to_owned())?;
        let position = position
            .trim()
            .parse::<u64>()
            .map_err(|e| format!("position: {e}"))?;
        if position == 0 {
            return Err("position: the first event is at position 1 or later".into());
        }
        Ok(Self {
            position: GlobalPosition(position),
            hash: hash.parse()?,
        })
    }
}

/// Why a link is broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BrokenReason {
    /// The event as stored now does not hash to its link: it (or an earlier link) was
    /// edited.
    HashMismatch,
    /// An event at or below the chain head has no link: it was inserted after it was
    /// chained, or its link was deleted.
    MissingLink,
    /// A link names a position the log no longer holds: the event was deleted.
    MissingEvent,
}

impl BrokenReason {
    /// The reason as reported.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HashMismatch => "hash_mismatch",
            Self::MissingLink => "missing_link",
            Self::MissingEvent => "missing_event",
        }
    }
}

/// The first broken link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BrokenLink {
    /// Its position.
    pub position: u64,
    /// The event's stream, if the log still holds it.
    pub stream: Option<String>,
    /// The event's revision in its stream, if the log still holds it.
    pub revision: Option<u64>,
    /// Why.
    pub reason: BrokenReason,
}

impl BrokenLink {
    fn at(event: &RecordedEvent, reason: BrokenReason) -> Self {
        Self {
            position: event.position.0,
            stream: Some(event.stream.clone()),
            revision: Some(event.revision),
            reason,
        }
    }
}

/// How a published head compares with the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AnchorCheck {
    /// The position given.
    pub position: u64,
    /// The hash given.
    pub expected: String,
    /// The verified link at that position (absent if the walk did not reach it, or the
    /// position holds no chained event).
    pub found: Option<String>,
    /// Whether they are the same.
    pub matches: bool,
}

/// What [`verify`] found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// No broken link, and the anchor (if one was given) matches.
    pub ok: bool,
    /// Links recomputed and found equal.
    pub events_checked: u64,
    /// The chain's head as stored: publish it to anchor the chain elsewhere.
    pub head: ChainHead,
    /// Events after the head, not chained yet (the chainer's lag; they are not checked).
    /// Absent when the walk stopped at a broken link.
    pub unchained: Option<u64>,
    /// The first broken link, if any.
    pub first_broken: Option<BrokenLink>,
    /// The published head compared, if one was given.
    pub anchor: Option<AnchorCheck>,
}

/// The log, a page at a time.
struct Events<'a> {
    log: &'a dyn EventLog,
    after: GlobalPosition,
    page: VecDeque<RecordedEvent>,
    done: bool,
}

impl Events<'_> {
    async fn peek(&mut self) -> Result<Option<GlobalPosition>, StoreError> {
        if self.page.is_empty() && !self.done {
            let page = self.log.read_all(self.after, PAGE).await?;
            self.done = page.len() < PAGE;
            if let Some(last) = page.last() {
                self.after = last.position;
            }
            self.page.extend(page);
        }
        Ok(self.page.front().map(|e| e.position))
    }

    fn pop(&mut self) -> Option<RecordedEvent> {
        self.page.pop_front()
    }
}

/// The stored links up to the head, a page at a time.
struct Links<'a> {
    db: &'a Database,
    after: GlobalPosition,
    up_to: GlobalPosition,
    page: VecDeque<(GlobalPosition, String)>,
    done: bool,
}

impl Links<'_> {
    async fn peek(&mut self) -> Result<Option<(GlobalPosition, String)>, sqlx::Error> {
        if self.page.is_empty() && !self.done {
            let rows: Vec<(i64, String)> = sqlx::query_as(
                "SELECT global_position, hash FROM event_chain \
                 WHERE global_position > $1 AND global_position <= $2 \
                 ORDER BY global_position LIMIT $3",
            )
            .bind(self.after.0 as i64)
            .bind(self.up_to.0 as i64)
            .bind(PAGE as i64)
            .fetch_all(self.db.pool())
            .await?;
            self.done = rows.len() < PAGE;
            if let Some((last, _)) = rows.last() {
                self.after = GlobalPosition(*last as u64);
            }
            self.page.extend(
                rows.into_iter()
                    .map(|(position, hash)| (GlobalPosition(position as u64), hash)),
            );
        }
        Ok(self.page.front().cloned())
    }

    fn pop(&mut self) {
        self.page.pop_front();
    }
}

/// Reads the log from the start, recomputes every link up to the chain's head and
/// compares it with the stored chain; stops at the first broken link. Events after the
/// head are counted, not checked. With `anchor`, also compares the link at its position
/// with the hash published. Holds one page of events and one of links at a time.
#[tracing::instrument(skip_all)]
pub async fn verify(
    db: &Database,
    log: &dyn EventLog,
    anchor: Option<Anchor>,
) -> Result<VerifyReport, ChainError> {
    let head = head(db).await?;
    let up_to = GlobalPosition(head.position);
    let mut events = Events {
        log,
        after: GlobalPosition::START,
        page: VecDeque::new(),
        done: false,
    };
    let mut links = Links {
        db,
        after: GlobalPosition::START,
        up_to,
        page: VecDeque::new(),
        done: false,
    };
    let mut previous = ChainHash::GENESIS;
    let mut checked = 0u64;
    let mut last_linked = GlobalPosition::START;
    let mut unchained = 0u64;
    let mut broken: Option<BrokenLink> = None;
    let mut anchor_found: Option<String> = None;
    loop {
        let event = events.peek().await?;
        let stored = links.peek().await?;
        match (event, stored) {
            (None, None) => break,
            (Some(position), None) if position > up_to => {
                events.pop();
                unchained += 1;
            }
            (Some(position), Some((linked, stored))) if position == linked => {
                let Some(event) = events.pop() else { break };
                links.pop();
                let recomputed = link(&previous, &event);
                if recomputed.to_hex() != stored {
                    broken = Some(BrokenLink::at(&event, BrokenReason::HashMismatch));
                    break;
                }
                checked += 1;
                previous = recomputed;
                last_linked = position;
                if anchor.is_some_and(|a| a.position == position) {
                    anchor_found = Some(stored);
                }
            }
            (Some(position), stored) if stored.as_ref().is_none_or(|(l, _)| position < *l) => {
                let Some(event) = events.pop() else { break };
                broken = Some(BrokenLink::at(&event, BrokenReason::MissingLink));
                break;
            }
            (_, Some((linked, _))) => {
                broken = Some(BrokenLink {
                    position: linked.0,
                    stream: None,
                    revision: None,
                    reason: BrokenReason::MissingEvent,
                });
                break;
            }
            // Unreachable: an event with no link is covered by the arms above.
            (Some(_), None) => break,
        }
    }
    if broken.is_none() && up_to != GlobalPosition::START && last_linked != up_to {
        // The head's own event and link are both gone.
        broken = Some(BrokenLink {
            position: up_to.0,
            stream: None,
            revision: None,
            reason: BrokenReason::MissingLink,
        });
    }
    let anchor = anchor.map(|a| {
        let expected = a.hash.to_hex();
        AnchorCheck {
            position: a.position.0,
            matches: anchor_found.as_deref() == Some(expected.as_str()),
            found: anchor_found,
            expected,
        }
    });
    Ok(VerifyReport {
        ok: broken.is_none() && anchor.as_ref().is_none_or(|a| a.matches),
        events_checked: checked,
        unchained: broken.is_none().then_some(unchained),
        first_broken: broken,
        head,
        anchor,
    })
}
