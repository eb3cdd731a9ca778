//! Given / when / then: roles, seats, invitation links and every path that could leave a
//! workspace without an owner.

use super::*;
use crate::Aggregate;
use crate::testing::given;
use std::sync::Arc;

fn id(n: u128) -> AccountId {
    AccountId(Uuid::from_u128(n))
}
const OWNER: u128 = 1;
const ADMIN: u128 = 2;
const MEMBER: u128 = 3;
const OUTSIDER: u128 = 9;

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_unix_micros(seconds * 1_000_000)
}
fn days(n: i64) -> Timestamp {
    at(n * 86_400)
}
fn invitation(n: u128) -> Uuid {
    Uuid::from_u128(1000 + n)
}

fn links() -> LinkHashes {
    LinkHashes(Arc::new(|id, generation| format!("{id}#{generation}")))
}

fn created() -> Vec<WorkspaceEvent> {
    vec![WorkspaceEvent::WorkspaceCreated {
        owner: id(OWNER),
        name: "Studio".into(),
        at: at(0),
    }]
}

fn joined(account: u128, role: Role, n: u128) -> [WorkspaceEvent; 2] {
    [
        WorkspaceEvent::MemberInvited {
            invitation_id: invitation(n),
            email: format!("{account}@example.com"),
            role,
            token_hash: format!("{}#1", invitation(n)),
            generation: 1,
            expires_at: days(7),
            invited_by: id(OWNER),
            workspace_name: "Studio".into(),
            at: at(n as i64),
        },
        WorkspaceEvent::InvitationAccepted {
            invitation_id: invitation(n),
            account_id: id(account),
            role,
            at: at(10 + n as i64),
        },
    ]
}

/// Owner, an admin and a member.
fn team() -> Vec<WorkspaceEvent> {
    let mut events = created();
    events.extend(joined(ADMIN, Role::Admin, 1));
    events.extend(joined(MEMBER, Role::Member, 2));
    events
}

fn invite(actor: u128, email: &str, seats: u32, now: Timestamp) -> WorkspaceCommand {
    WorkspaceCommand::Invite {
        actor: id(actor),
        invitation_id: invitation(50),
        email: email.into(),
        invitee: None,
        role: Role::Member,
        link: links(),
        expires_at: now.plus(std::time::Duration::from_secs(7 * 86_400)),
        seats,
        at: now,
    }
}

#[test]
fn a_workspace_is_created_with_its_creator_as_owner() {
    let state = given::<Workspace>([])
        .when(WorkspaceCommand::Create {
            owner: id(OWNER),
            name: "  Studio ".into(),
            at: at(0),
        })
        .then(created());
    assert_eq!(state.members[&id(OWNER)].role, Role::Owner);
}

#[test]
fn names_are_bounded() {
    given::<Workspace>([])
        .when(WorkspaceCommand::Create {
            owner: id(OWNER),
            name: " ".into(),
            at: at(0),
        })
        .then_error(WorkspaceError::Invalid {
            field: "name",
            message: "must be 1 to 80 printable characters".into(),
        });
}

#[test]
fn non_members_are_told_not_found_and_members_may_not_administer() {
    given::<Workspace>(team())
        .when(WorkspaceCommand::Rename {
            actor: id(OUTSIDER),
            name: "x".into(),
            at: at(100),
        })
        .then_error(WorkspaceError::NotFound);
    given::<Workspace>(team())
        .when(WorkspaceCommand::Rename {
            actor: id(MEMBER),
            name: "x".into(),
            at: at(100),
        })
        .then_error(WorkspaceError::Forbidden(
            "only admins and owners may do this",
        ));
    given::<Workspace>(team())
        .when(invite(MEMBER, "a@example.com", 10, at(100)))
        .then_error(WorkspaceError::Forbidden(
            "only admins and owners may do this",
        ));
}

#[test]
fn the_last_owner_cannot_leave_but_another_member_can() {
    given::<Workspace>(team())
        .when(WorkspaceCommand::Leave {
            actor: id(OWNER),
            at: at(100),
        })
        .then_error(WorkspaceError::LastOwner);
    given::<Workspace>(team())
        .when(WorkspaceCommand::Leave {
            actor: id(ADMIN),
            at: at(100),
        })
        .then([WorkspaceEvent::MemberLeft {
            account_id: id(ADMIN),
            account_deleted: false,
            at: at(100),
        }]);
}

#[test]
fn the_last_owner_cannot_be_demoted_and_only_owners_touch_owners() {
    given::<Workspace>(team())
        .when(WorkspaceCommand::ChangeRole {
            actor: id(OWNER),
            member: id(OWNER),
            role: Role::Admin,
            at: at(100),
        })
        .then_error(WorkspaceError::LastOwner);
    given::<Workspace>(team())
        .when(WorkspaceCommand::ChangeRole {
            actor: id(ADMIN),
            member: id(OWNER),
            role: Role::Member,
            at: at(100),
        })
        .then_error(WorkspaceError::Forbidden("only owners may change owners"));
    given::<Workspace>(team())
        .when(WorkspaceCommand::ChangeRole {
            actor: id(ADMIN),
            member: id(MEMBER),
            role: Role::Owner,
            at: at(100),
        })
        .then_error(WorkspaceError::Forbidden("only owners may change owners"));
    // With a second owner, the first may step down.
    let mut history = team();
    history.push(WorkspaceEvent::MemberRoleChanged {
        account_id: id(ADMIN),
        role: Role::Owner,
        by: id(OWNER),
        at: at(50),
    });
    given::<Workspace>(history)
        .when(WorkspaceCommand::ChangeRole {
            actor: id(OWNER),
            member: id(OWNER),
            role: Role::Member,
            at: at(100),
        })
        .then([WorkspaceEvent::MemberRoleChanged {
            account_id: id(OWNER),
            role: Role::Member,
            by: id(OWNER),
            at: at(100),
        }]);
}

#[test]
fn the_last_owner_cannot_be_removed_and_admins_cannot_remove_owners() {
    let mut history = team();
    history.push(WorkspaceEvent::MemberRoleChanged {
        account_id: id(ADMIN),
        role: Role::Owner,
        by: id(OWNER),
        at: at(50),
    });
    history.push(WorkspaceEvent::MemberRoleChanged {
        account_id: id(OWNER),
        role: Role::Admin,
        by: id(OWNER),
        at: at(51),
    });
    // OWNER is now an admin, ADMIN the only owner.
    given::<Workspace>(history.clone())
        .when(WorkspaceCommand::Remove {
            actor: id(OWNER),
            member: id(ADMIN),
            at: at(100),
        })
        .then_error(WorkspaceError::Forbidden("only owners may remove owners"));
    given::<Workspace>(history)
        .when(WorkspaceCommand::Remove {
            actor: id(ADMIN),
            member: id(MEMBER),
            at: at(100),
        })
        .then([WorkspaceEvent::MemberRemoved {
            account_id: id(MEMBER),
            by: id(ADMIN),
            workspace_name: "Studio".into(),
            at: at(100),
        }]);
}

#[test]
fn ownership_moves_and_the_old_owner_becomes_admin() {
    let state = given::<Workspace>(team())
        .when(WorkspaceCommand::TransferOwnership {
            actor: id(OWNER),
            to: id(MEMBER),
            at: at(100),
        })
        .then([WorkspaceEvent::OwnershipTransferred {
            from: id(OWNER),
            to: id(MEMBER),
            at: at(100),
        }]);
    assert_eq!(state.members[&id(OWNER)].role, Role::Admin);
    assert_eq!(state.members[&id(MEMBER)].role, Role::Owner);
    given::<Workspace>(team())
        .when(WorkspaceCommand::TransferOwnership {
            actor: id(ADMIN),
            to: id(MEMBER),
            at: at(100),
        })
        .then_error(WorkspaceError::Forbidden("only owners may do this"));
}

#[test]
fn a_deleted_last_owner_is_succeeded_by_the_longest_standing_admin() {
    let state = given::<Workspace>(team())
        .when(WorkspaceCommand::ForgetAccount {
            account: id(OWNER),
            at: at(100),
        })
        .then([
            WorkspaceEvent::OwnershipTransferred {
                from: id(OWNER),
                to: id(ADMIN),
                at: at(100),
            },
            WorkspaceEvent::MemberLeft {
                account_id: id(OWNER),
                account_deleted: true,
                at: at(100),
            },
        ]);
    assert_eq!(state.owners().collect::<Vec<_>>(), vec![id(ADMIN)]);
}

#[test]
fn a_deleted_last_owner_without_admins_is_succeeded_by_a_member() {
    let mut history = created();
    history.extend(joined(MEMBER, Role::Member, 2));
    let state = given::<Workspace>(history)
        .when(WorkspaceCommand::ForgetAccount {
            account: id(OWNER),
            at: at(100),
        })
        .then([
            WorkspaceEvent::OwnershipTransferred {
                from: id(OWNER),
                to: id(MEMBER),
                at: at(100),
            },
            WorkspaceEvent::MemberLeft {
                account_id: id(OWNER),
                account_deleted: true,
                at: at(100),
            },
        ]);
    assert_eq!(state.owners().count(), 1);
}

#[test]
fn a_workspace_whose_only_member_is_deleted_dies_with_its_invitations() {
    let mut history = created();
    history.push(WorkspaceEvent::MemberInvited {
        invitation_id: invitation(7),
        email: "x@example.com".into(),
        role: Role::Member,
        token_hash: "h".into(),
        generation: 1,
        expires_at: days(7),
        invited_by: id(OWNER),
        workspace_name: "Studio".into(),
        at: at(1),
    });
    let state = given::<Workspace>(history)
        .when(WorkspaceCommand::ForgetAccount {
            account: id(OWNER),
            at: at(100),
        })
        .then([
            WorkspaceEvent::InvitationRevoked {
                invitation_id: invitation(7),
                by: None,
                at: at(100),
            },
            WorkspaceEvent::WorkspaceDeleted {
                by: id(OWNER),
                at: at(100),
            },
        ]);
    assert!(state.deleted);
}

#[test]
fn forgetting_a_non_member_changes_nothing() {
    given::<Workspace>(team())
        .when(WorkspaceCommand::ForgetAccount {
            account: id(OUTSIDER),
            at: at(100),
        })
        .then([]);
}

#[test]
fn deleting_needs_an_owner_and_the_name() {
    given::<Workspace>(team())
        .when(WorkspaceCommand::Delete {
            actor: id(ADMIN),
            confirm: "Studio".into(),
            at: at(100),
        })
        .then_error(WorkspaceError::Forbidden("only owners may do this"));
    given::<Workspace>(team())
        .when(WorkspaceCommand::Delete {
            actor: id(OWNER),
            confirm: "studio".into(),
            at: at(100),
        })
        .then_error(WorkspaceError::ConfirmMismatch);
    given::<Workspace>(team())
        .when(WorkspaceCommand::Delete {
            actor: id(OWNER),
            confirm: "Studio".into(),
            at: at(100),
        })
        .then([WorkspaceEvent::WorkspaceDeleted {
            by: id(OWNER),
            at: at(100),
        }]);
}

#[test]
fn seats_count_members_and_pending_invitations_but_not_expired_ones() {
    // Three members: a fourth seat is free with four, not with three.
    given::<Workspace>(team())
        .when(invite(ADMIN, "a@example.com", 3, at(100)))
        .then_error(WorkspaceError::SeatsFull(3));
    let mut history = team();
    history.push(WorkspaceEvent::MemberInvited {
        invitation_id: invitation(8),
        email: "b@example.com".into(),
        role: Role::Member,
        token_hash: "h".into(),
        generation: 1,
        expires_at: days(1),
        invited_by: id(OWNER),
        workspace_name: "Studio".into(),
        at: at(1),
    });
    given::<Workspace>(history.clone())
        .when(invite(ADMIN, "a@example.com", 4, at(100)))
        .then_error(WorkspaceError::SeatsFull(4));
    // Once the pending one expired, its seat is free again.
    let later = days(2);
    let state = given::<Workspace>(history)
        .when(invite(ADMIN, "a@example.com", 4, later))
        .then([WorkspaceEvent::MemberInvited {
            invitation_id: invitation(50),
            email: "a@example.com".into(),
            role: Role::Member,
            token_hash: format!("{}#1", invitation(50)),
            generation: 1,
            expires_at: later.plus(std::time::Duration::from_secs(7 * 86_400)),
            invited_by: id(ADMIN),
            workspace_name: "Studio".into(),
            at: later,
        }]);
    assert_eq!(state.seats_taken(later), 4);
}

#[test]
fn inviting_a_pending_address_again_refreshes_its_invitation() {
    let mut history = created();
    history.push(WorkspaceEvent::MemberInvited {
        invitation_id: invitation(8),
        email: "b@example.com".into(),
        role: Role::Member,
        token_hash: "old".into(),
        generation: 1,
        expires_at: days(7),
        invited_by: id(OWNER),
        workspace_name: "Studio".into(),
        at: at(1),
    });
    // Seats full for a new invitation, but a refresh takes no new seat.
    let state = given::<Workspace>(history)
        .when(invite(OWNER, "b@example.com", 2, at(100)))
        .then([WorkspaceEvent::InvitationRefreshed {
            invitation_id: invitation(8),
            email: "b@example.com".into(),
            role: Role::Member,
            token_hash: format!("{}#2", invitation(8)),
            generation: 2,
            expires_at: at(100).plus(std::time::Duration::from_secs(7 * 86_400)),
            by: id(OWNER),
            workspace_name: "Studio".into(),
            at: at(100),
        }]);
    assert_eq!(state.invitations.len(), 1);
}

fn pending() -> Vec<WorkspaceEvent> {
    let mut history = created();
    history.push(WorkspaceEvent::MemberInvited {
        invitation_id: invitation(8),
        email: "b@example.com".into(),
        role: Role::Admin,
        token_hash: "live".into(),
        generation: 1,
        expires_at: days(7),
        invited_by: id(OWNER),
        workspace_name: "Studio".into(),
        at: at(1),
    });
    history
}

fn accept(token: &str, email: &str, now: Timestamp) -> WorkspaceCommand {
    WorkspaceCommand::Accept {
        invitation_id: invitation(8),
        token_hash: token.into(),
        account: id(MEMBER),
        email: email.into(),
        at: now,
    }
}

#[test]
fn a_link_works_once_for_the_address_invited_until_it_expires() {
    let state = given::<Workspace>(pending())
        .when(accept("live", "b@example.com", at(100)))
        .then([WorkspaceEvent::InvitationAccepted {
            invitation_id: invitation(8),
            account_id: id(MEMBER),
            role: Role::Admin,
            at: at(100),
        }]);
    assert_eq!(state.members[&id(MEMBER)].role, Role::Admin);
    let mut used = pending();
    used.push(WorkspaceEvent::InvitationAccepted {
        invitation_id: invitation(8),
        account_id: id(MEMBER),
        role: Role::Admin,
        at: at(100),
    });
    given::<Workspace>(used)
        .when(WorkspaceCommand::Decline {
            invitation_id: invitation(8),
            token_hash: "live".into(),
            account: id(OUTSIDER),
            email: "b@example.com".into(),
            at: at(101),
        })
        .then_error(WorkspaceError::LinkInvalid);
    given::<Workspace>(pending())
        .when(accept("forged", "b@example.com", at(100)))
        .then_error(WorkspaceError::LinkInvalid);
    given::<Workspace>(pending())
        .when(accept("live", "c@example.com", at(100)))
        .then_error(WorkspaceError::OtherAddress);
    given::<Workspace>(pending())
        .when(accept("live", "b@example.com", days(8)))
        .then_error(WorkspaceError::LinkExpired);
}

#[test]
fn a_members_address_is_not_invited_and_a_member_may_decline() {
    let mut command = invite(OWNER, "member@example.com", 10, at(100));
    if let WorkspaceCommand::Invite { invitee, .. } = &mut command {
        *invitee = Some(id(MEMBER));
    }
    given::<Workspace>(team())
        .when(command.clone())
        .then_error(WorkspaceError::AlreadyMember);
    if let WorkspaceCommand::Invite { invitee, .. } = &mut command {
        *invitee = Some(id(OUTSIDER));
    }
    let mut state = Workspace::default();
    for event in team() {
        state.evolve(&event);
    }
    assert!(state.decide(&command).is_ok());
    // Invited before (by an address the account took later): the member cannot accept,
    // but may decline, which frees the seat.
    let mut history = team();
    history.push(WorkspaceEvent::MemberInvited {
        invitation_id: invitation(9),
        email: "member@example.com".into(),
        role: Role::Member,
        token_hash: "live".into(),
        generation: 1,
        expires_at: days(7),
        invited_by: id(OWNER),
        workspace_name: "Studio".into(),
        at: at(50),
    });
    let answer = |accept: bool| {
        let (token, email) = ("live".into(), "member@example.com".into());
        WorkspaceCommand::answer(accept, invitation(9), token, id(MEMBER), email, at(60))
    };
    given::<Workspace>(history.clone())
        .when(answer(true))
        .then_error(WorkspaceError::AlreadyMember);
    let state = given::<Workspace>(history).when(answer(false)).then([
        WorkspaceEvent::InvitationDeclined {
            invitation_id: invitation(9),
            account_id: id(MEMBER),
            at: at(60),
        },
    ]);
    assert_eq!(state.seats_taken(at(61)), 3, "the members alone");
}

#[test]
fn a_resent_invitation_kills_the_old_link_and_revived_ones_take_a_seat() {
    let resend = |now| WorkspaceCommand::Resend {
        actor: id(OWNER),
        invitation_id: invitation(8),
        link: links(),
        expires_at: days(20),
        seats: 2,
        at: now,
    };
    let mut history = pending();
    let state = given::<Workspace>(history.clone())
        .when(resend(days(14)))
        .then([WorkspaceEvent::InvitationRefreshed {
            invitation_id: invitation(8),
            email: "b@example.com".into(),
            role: Role::Admin,
            token_hash: format!("{}#2", invitation(8)),
            generation: 2,
            expires_at: days(20),
            by: id(OWNER),
            workspace_name: "Studio".into(),
            at: days(14),
        }]);
    assert_eq!(
        state.invitations[&invitation(8)].status_at(days(15)),
        InvitationStatus::Pending
    );
    history.extend(joined(ADMIN, Role::Admin, 1));
    given::<Workspace>(history)
        .when(resend(days(14)))
        .then_error(WorkspaceError::SeatsFull(2));
}

#[test]
fn invitations_last_one_to_thirty_days_and_never_offer_ownership() {
    let mut command = invite(OWNER, "a@example.com", 10, at(0));
    if let WorkspaceCommand::Invite { expires_at, .. } = &mut command {
        *expires_at = days(31);
    }
    given::<Workspace>(created())
        .when(command)
        .then_error(WorkspaceError::Invalid {
            field: "expires_in_days",
            message: "must be between 1 and 30".into(),
        });
    let mut command = invite(OWNER, "a@example.com", 10, at(0));
    if let WorkspaceCommand::Invite { role, .. } = &mut command {
        *role = Role::Owner;
    }
    given::<Workspace>(created())
        .when(command)
        .then_error(WorkspaceError::Invalid {
            field: "role",
            message: "must be admin or member".into(),
        });
}

#[test]
fn probes_record_transitions_once_and_tell_the_administrators() {
    let mut history = team();
    history.push(WorkspaceEvent::StorageConfigured {
        by: id(OWNER),
        bucket: "b".into(),
        region: "r".into(),
        endpoint: None,
        access_key_id: "AKIAEXAMPLE1234".into(),
        access_key_hint: "AKIA…1234".into(),
        secret_access_key: "s".into(),
        force_path_style: false,
        at: at(10),
    });
    let mut configured = Workspace::default();
    for event in &history {
        configured.evolve(event);
    }
    let probed = configured.storage.external.clone().expect("configured");
    let failing = |now| WorkspaceCommand::RecordProbe {
        probed: probed.clone(),
        problem: Some("put: AccessDenied".into()),
        at: now,
    };
    assert!(
        !format!("{probed:?}").contains("\"s\""),
        "the secret stays out of Debug"
    );
    // A probe of settings replaced since records nothing.
    let mut replaced = probed.clone();
    replaced.secret_access_key = "the old secret".into();
    given::<Workspace>(history.clone())
        .when(WorkspaceCommand::RecordProbe {
            probed: replaced,
            problem: Some("put: SignatureDoesNotMatch".into()),
            at: at(50),
        })
        .then([]);
    let state = given::<Workspace>(history.clone())
        .when(failing(at(100)))
        .then([WorkspaceEvent::StorageProbed {
            problem: Some("put: AccessDenied".into()),
            changed: true,
            notify: vec![id(OWNER), id(ADMIN)],
            at: at(100),
        }]);
    assert!(matches!(
        state.storage.health,
        StorageHealth::Misconfigured { since, .. } if since == at(100)
    ));
    history.push(WorkspaceEvent::StorageProbed {
        problem: Some("put: AccessDenied".into()),
        changed: true,
        notify: vec![],
        at: at(100),
    });
    given::<Workspace>(history.clone())
        .when(failing(at(200)))
        .then([WorkspaceEvent::StorageProbed {
            problem: Some("put: AccessDenied".into()),
            changed: false,
            notify: vec![],
            at: at(200),
        }]);
    given::<Workspace>(history)
        .when(WorkspaceCommand::RecordProbe {
            probed,
            problem: None,
            at: at(300),
        })
        .then([WorkspaceEvent::StorageProbed {
            problem: None,
            changed: true,
            notify: vec![id(OWNER), id(ADMIN)],
            at: at(300),
        }]);
}

#[test]
fn key_hints_show_the_prefix_and_last_four() {
    assert_eq!(decide::key_hint("AKIAIOSFODNN7EXAMPLE"), "AKIA…MPLE");
    assert_eq!(decide::key_hint("short"), "…");
    let _ = Workspace::default().decide(&WorkspaceCommand::Leave {
        actor: id(OWNER),
        at: at(0),
    });
}

/// An answered invitation's key is destroyed, so a fold from the log reads its answer but
/// not how it was sent: it is closed all the same, for a resend and a revocation, and the
/// member it made is one.
#[test]
fn an_invitation_known_only_by_its_answer_is_closed() {
    let [_, accepted] = joined(MEMBER, Role::Member, 8);
    let mut history = created();
    history.push(accepted);
    history.push(WorkspaceEvent::InvitationDeclined {
        invitation_id: invitation(9),
        account_id: id(OUTSIDER),
        at: at(30),
    });
    for (answered, status) in [(8, "accepted"), (9, "declined")] {
        given::<Workspace>(history.clone())
            .when(WorkspaceCommand::Resend {
                actor: id(OWNER),
                invitation_id: invitation(answered),
                link: links(),
                expires_at: days(20),
                seats: 5,
                at: at(40),
            })
            .then_error(WorkspaceError::InvitationClosed(status));
        given::<Workspace>(history.clone())
            .when(WorkspaceCommand::RevokeInvitation {
                actor: id(OWNER),
                invitation_id: invitation(answered),
                at: at(40),
            })
            .then_error(WorkspaceError::InvitationClosed(status));
    }
    let mut state = Workspace::default();
    for event in &history {
        state.evolve(event);
    }
    assert_eq!(state.members[&id(MEMBER)].role, Role::Member);
}
