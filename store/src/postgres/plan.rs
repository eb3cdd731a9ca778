//! Deciding a group commit's appends: which are accepted and at which revisions.
//!
//! Pure: given what is known of the log, each append is decided in turn against what the
//! earlier ones leave (its own expected-revision check, its own event ids). Two modes:
//! - [`Knowledge::Read`]: the streams' last revisions and the batch's taken event ids
//!   were read, so every decision is final;
//! - [`Knowledge::Trusted`]: nothing was read. The first append to each stream is taken
//!   to fit (an `Exact` one leaves a guard for the insert to check, a `NoStream` one is
//!   held to it by the unique (stream, revision) key, an `Any` one goes after whatever
//!   last revision the stream has when the insert runs), and later appends to the stream
//!   are decided against that. The insert then writes all or nothing: if the log was not
//!   as trusted, it writes nothing and the batch is decided again from a read.

use crate::envelope::ExpectedRevision;
use std::collections::{HashMap, HashSet};
use uuid::Uuid;

/// One append as the planner sees it.
pub(super) struct Proposal<'a> {
    /// The stream.
    pub stream: &'a str,
    /// The caller's expectation.
    pub expected: ExpectedRevision,
    /// The event ids, in order.
    pub ids: Vec<Uuid>,
}

/// What is known of the log before the batch.
pub(super) enum Knowledge<'a> {
    /// Read: each stream's last revision (absent: no events) and which event ids are taken.
    Read {
        /// Last revision per stream.
        revisions: &'a HashMap<String, u64>,
        /// Event ids the log holds.
        taken: &'a HashSet<Uuid>,
    },
    /// Nothing read: the insert proves it (see the module's header).
    Trusted,
}

/// Where an accepted append's first event goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum First {
    /// This revision.
    At(u64),
    /// This many revisions after the stream's last one when the insert runs (the stream's
    /// last revision was not read).
    AfterHead(u64),
}

/// The decisions for a batch.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Plan<'a> {
    /// Per append, in order: where its events go, or `None` if it is refused.
    pub firsts: Vec<Option<First>>,
    /// Events that must exist for the plan to hold: the revision each trusted `Exact`
    /// append expects its stream to end at.
    pub guards: Vec<(&'a str, u64)>,
}

/// A stream's last revision as the batch's earlier appends leave it.
#[derive(Clone, Copy)]
enum Tip {
    /// This one (`None`: no events).
    Known(Option<u64>),
    /// This many events after the last revision it has when the insert runs.
    AfterHead(u64),
}

/// Decides every append of `batch` in order. `None` when trusting the log cannot decide an
/// append (an `Exact` one after an `Any` one on the same stream): read it first.
pub(super) fn plan<'a>(batch: &[Proposal<'a>], knowledge: &Knowledge<'_>) -> Option<Plan<'a>> {
    let mut tips: HashMap<&str, Tip> = HashMap::new();
    let mut claimed: HashSet<Uuid> = HashSet::new();
    let mut plan = Plan {
        firsts: Vec::with_capacity(batch.len()),
        guards: Vec::new(),
    };
    for append in batch {
        let tip = tips
            .get(append.stream)
            .copied()
            .or_else(|| match knowledge {
                Knowledge::Read { revisions, .. } => {
                    Some(Tip::Known(revisions.get(append.stream).copied()))
                }
                Knowledge::Trusted => None,
            });
        let (first, guard) = match (tip, append.expected) {
            (None, ExpectedRevision::Any) => (Some(First::AfterHead(0)), None),
            (None, ExpectedRevision::NoStream) => (Some(First::At(0)), None),
            (None, ExpectedRevision::Exact(n)) => (Some(First::At(n + 1)), Some(n)),
            (Some(Tip::Known(current)), expected) => {
                let fits = match expected {
                    ExpectedRevision::Any => true,
                    ExpectedRevision::NoStream => current.is_none(),
                    ExpectedRevision::Exact(n) => current == Some(n),
                };
                (fits.then(|| First::At(current.map_or(0, |r| r + 1))), None)
            }
            (Some(Tip::AfterHead(after)), ExpectedRevision::Any) => {
                (Some(First::AfterHead(after)), None)
            }
            // Events were appended to it in this batch: it exists.
            (Some(Tip::AfterHead(_)), ExpectedRevision::NoStream) => (None, None),
            (Some(Tip::AfterHead(_)), ExpectedRevision::Exact(_)) => return None,
        };
        let taken = |id: &Uuid| {
            claimed.contains(id)
                || matches!(knowledge, Knowledge::Read { taken, .. } if taken.contains(id))
        };
        let first = first.filter(|_| !append.ids.iter().any(taken));
        if let Some(first) = first {
            let count = append.ids.len() as u64;
            let tip = match first {
                First::At(at) => Tip::Known(Some(at + count - 1)),
                First::AfterHead(after) => Tip::AfterHead(after + count),
            };
            tips.insert(append.stream, tip);
            claimed.extend(append.ids.iter().copied());
            if let Some(n) = guard {
                plan.guards.push((append.stream, n));
            }
        }
        plan.firsts.push(first);
    }
    Some(plan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ExpectedRevision::{Any, Exact, NoStream};

    fn proposal(stream: &str, expected: ExpectedRevision, events: usize) -> Proposal<'_> {
        Proposal {
            stream,
            expected,
            ids: (0..events).map(|_| Uuid::new_v4()).collect(),
        }
    }

    /// Trusted, each stream's first append fits: `Exact` ones with a guard, `Any` ones
    /// after the head; later appends follow on from them.
    #[test]
    fn trusting_the_log_chains_appends_from_each_streams_first() {
        let batch = [
            proposal("a", Exact(4), 2),
            proposal("b", Any, 1),
            proposal("c", NoStream, 3),
            proposal("a", Exact(6), 1),
            proposal("b", Any, 2),
            proposal("c", Any, 1),
        ];
        let plan = plan(&batch, &Knowledge::Trusted).unwrap();
        assert_eq!(
            plan.firsts,
            [
                Some(First::At(5)),
                Some(First::AfterHead(0)),
                Some(First::At(0)),
                Some(First::At(7)),
                Some(First::AfterHead(1)),
                Some(First::At(3)),
            ]
        );
        assert_eq!(plan.guards, [("a", 4)]);
    }

    /// Trusted, a later append that does not fit what the earlier ones leave is refused,
    /// and one that reuses an event id of the batch too; neither leaves a guard.
    #[test]
    fn trusting_the_log_refuses_what_the_batch_itself_rules_out() {
        let mut batch = vec![
            proposal("a", NoStream, 1),
            proposal("a", NoStream, 1),
            proposal("a", Exact(5), 1),
            proposal("b", Any, 1),
            proposal("b", NoStream, 1),
            proposal("c", Exact(2), 1),
        ];
        batch[5].ids = batch[0].ids.clone();
        let plan = plan(&batch, &Knowledge::Trusted).unwrap();
        assert_eq!(
            plan.firsts,
            [
                Some(First::At(0)),
                None,
                None,
                Some(First::AfterHead(0)),
                None,
                None
            ]
        );
        assert!(plan.guards.is_empty());
    }

    /// An `Exact` append after an `Any` one on the same stream cannot be decided without
    /// reading the stream.
    #[test]
    fn trusting_the_log_gives_up_on_exact_after_any() {
        let batch = [proposal("a", Any, 1), proposal("a", Exact(3), 1)];
        assert!(plan(&batch, &Knowledge::Trusted).is_none());
    }

    /// Read, every append is decided against the revisions and ids read.
    #[test]
    fn reading_the_log_decides_every_append() {
        let revisions = HashMap::from([("a".to_owned(), 4), ("b".to_owned(), 0)]);
        let mut batch = vec![
            proposal("a", Exact(3), 1),
            proposal("a", Exact(4), 2),
            proposal("b", NoStream, 1),
            proposal("b", Any, 1),
            proposal("c", Exact(0), 1),
            proposal("c", NoStream, 1),
            proposal("d", Any, 1),
        ];
        let taken = HashSet::from([batch[6].ids[0]]);
        batch[3].ids.push(Uuid::new_v4());
        let knowledge = Knowledge::Read {
            revisions: &revisions,
            taken: &taken,
        };
        let plan = plan(&batch, &knowledge).unwrap();
        assert_eq!(
            plan.firsts,
            [
                None,
                Some(First::At(5)),
                None,
                Some(First::At(1)),
                None,
                Some(First::At(0)),
                None,
            ]
        );
        assert!(plan.guards.is_empty());
    }
}
