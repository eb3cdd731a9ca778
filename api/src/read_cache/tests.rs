//! The gate and the pending accounts, without a read model: what an entry needs to be
//! served, given what the follower has read and what the read model shows.

use super::*;
use std::collections::HashSet;
use uuid::Uuid;

#[derive(Debug)]
struct Row(AccountId);

impl Owned for Row {
    fn owner(&self) -> AccountId {
        self.0
    }
}

const AGE: Duration = Duration::from_secs(60);

fn empty() -> Inner<Row> {
    Inner {
        entries: HashMap::new(),
        generation: 0,
        read: 0,
        pending: HashMap::new(),
        pending_all: 0,
    }
}

fn cached(inner: &mut Inner<Row>, hash: &str, owner: AccountId) {
    inner.entries.insert(
        hash.to_owned(),
        Entry {
            row: Arc::new(Row(owner)),
            fetched: Instant::now(),
        },
    );
}

fn account() -> AccountId {
    AccountId(Uuid::new_v4())
}

fn only(account: AccountId) -> Changed {
    Changed::Accounts(HashSet::from([account]))
}

#[test]
fn nothing_is_served_before_the_follower_has_read_what_the_read_model_shows() {
    let mut inner = empty();
    let owner = account();
    cached(&mut inner, "h", owner);
    assert!(
        inner.serve("h", GlobalPosition(0), AGE).is_none(),
        "follower not started"
    );
    // The follower starts at head 10: anything before may have changed.
    inner.note_read(&Changed::Unknown, GlobalPosition(10));
    assert!(
        inner.serve("h", GlobalPosition(5), AGE).is_none(),
        "start not settled"
    );
    inner.settled(&Changed::Unknown, GlobalPosition(10));
    assert!(
        inner.entries.is_empty(),
        "the start forgets what was filled before it"
    );
    cached(&mut inner, "h", owner);
    assert!(inner.serve("h", GlobalPosition(10), AGE).is_some());
    // The read model shows position 11, which the follower has not read: no entry served.
    assert!(inner.serve("h", GlobalPosition(11), AGE).is_none());
    inner.note_read(&only(account()), GlobalPosition(12));
    assert!(inner.serve("h", GlobalPosition(11), AGE).is_some());
}

#[test]
fn an_account_with_a_change_in_flight_is_read_again_until_the_change_is_applied() {
    let mut inner = empty();
    inner.note_read(&Changed::Unknown, GlobalPosition(1));
    inner.settled(&Changed::Unknown, GlobalPosition(1));
    let (changed, other) = (account(), account());
    cached(&mut inner, "changed", changed);
    cached(&mut inner, "other", other);
    inner.note_read(&only(changed), GlobalPosition(5));
    // Read by the follower, not yet applied (or applied, not yet forgotten).
    for applied in [1, 5] {
        assert!(
            inner
                .serve("changed", GlobalPosition(applied), AGE)
                .is_none()
        );
        assert!(inner.serve("other", GlobalPosition(applied), AGE).is_some());
    }
    // A later change of the same account read before the first is settled keeps it
    // pending until that one is settled too.
    inner.note_read(&only(changed), GlobalPosition(7));
    inner.settled(&only(changed), GlobalPosition(5));
    assert!(
        !inner.entries.contains_key("changed"),
        "forgotten once applied"
    );
    cached(&mut inner, "changed", changed);
    assert!(inner.serve("changed", GlobalPosition(6), AGE).is_none());
    inner.settled(&only(changed), GlobalPosition(7));
    cached(&mut inner, "changed", changed);
    assert!(inner.serve("changed", GlobalPosition(7), AGE).is_some());
    assert!(
        inner.serve("other", GlobalPosition(7), AGE).is_some(),
        "never forgotten"
    );
}

#[test]
fn a_change_of_unknown_owner_holds_every_entry_back_and_forgets_them_all() {
    let mut inner = empty();
    inner.note_read(&Changed::Unknown, GlobalPosition(1));
    inner.settled(&Changed::Unknown, GlobalPosition(1));
    cached(&mut inner, "h", account());
    inner.note_read(&Changed::Unknown, GlobalPosition(3));
    assert!(inner.serve("h", GlobalPosition(2), AGE).is_none());
    let generation = inner.generation;
    inner.settled(&Changed::Unknown, GlobalPosition(3));
    assert!(inner.entries.is_empty());
    assert!(
        inner.generation > generation,
        "a fill that raced it is not stored"
    );
}

#[test]
fn an_entry_older_than_asked_is_not_served() {
    let mut inner = empty();
    inner.note_read(&Changed::Unknown, GlobalPosition(1));
    inner.settled(&Changed::Unknown, GlobalPosition(1));
    cached(&mut inner, "h", account());
    assert!(
        inner
            .serve("h", GlobalPosition(1), Duration::ZERO)
            .is_none()
    );
    assert!(inner.serve("h", GlobalPosition(1), AGE).is_some());
}
