//! A support session once its customer's client is connected: technicians
//! accept it, chat, ask for rights and end it; the customer answers,
//! chats, takes rights back, ends it and rates it. Each step is stored
//! and audited in one commit, then told to the client and to the
//! technicians' event streams.

use jumpgate_api_types::support::{self as api, SupportEvent};
use jumpgate_proto::assist::{
    self, AssistMsg, ChatFrom, ChatLine, ParticipantRole, Right, Rights, SupportState,
};

use super::SupportError;
use super::crypto::{self, field_aad};
use super::live::{Live, Person};
use super::{hub, queues};
use crate::ids;
use crate::keys::WrappedKey;
use crate::rbac::Subject;
use crate::state::AppState;
use crate::store::{AuditAction, AuditEvent, Exec, WriteTx, sql};

/// Who the audit log names for the customer.
pub(crate) fn customer_actor(name: &str) -> String {
    format!("customer:{name}")
}

/// The technicians' view of `id`: the store's row and the live fold.
pub(crate) async fn view(st: &AppState, id: &str) -> Result<api::SupportSession, SupportError> {
    let mut v = hub::session(&st.db, &st.keys, id)
        .await?
        .ok_or_else(|| SupportError::UnknownSession(id.to_owned()))?;
    fill_live(st, &mut v);
    Ok(v)
}

/// Fills the live parts of a technicians' view of a session: the live
/// fold's (people, rights, client) and the customer's screens shown now.
pub(crate) fn fill_live(st: &AppState, v: &mut api::SupportSession) {
    let id = v.id.clone();
    st.support_hub.live.with(&id, |l| l.fill(v));
    if v.state != "ended" {
        v.screens = st.sessions.watches.support_screens(&id);
    }
}

/// Tells the technicians' streams (and the waiting customers of its
/// queue, their place) that `id` changed.
pub(crate) async fn publish(st: &AppState, id: &str) {
    match view(st, id).await {
        Ok(v) => {
            let queue = v.queue.clone();
            if v.state == "ended" {
                let reason = v.end_reason.unwrap_or_else(|| "ended".into());
                st.support_hub.publish(
                    &queue,
                    SupportEvent::Left {
                        id: id.to_owned(),
                        reason,
                    },
                );
            } else {
                st.support_hub.publish(
                    &queue,
                    SupportEvent::Session {
                        session: Box::new(v),
                    },
                );
            }
            st.support_hub.live.tell_positions(&queue);
        }
        Err(e) => tracing::warn!(support = %id, error = %e, "cannot publish a support session"),
    }
}

/// A technician's role in `id`, or why they have none.
fn role(st: &AppState, id: &str, who: &Subject) -> Result<ParticipantRole, SupportError> {
    let user = who.user_id().map(|u| u.as_str().to_owned());
    st.support_hub
        .live
        .with(id, |l| user.as_deref().and_then(|u| l.role_of(u)))
        .ok_or_else(|| SupportError::NotLive(id.to_owned()))?
        .ok_or_else(|| {
            SupportError::Forbidden(format!("you do not take part in support session `{id}`"))
        })
}

/// Checks that `who` works on `id` (its owner or a participant):
/// observers and supervisors only read along, and may not `what`.
fn working(st: &AppState, id: &str, who: &Subject, what: &str) -> Result<(), SupportError> {
    match role(st, id, who)? {
        ParticipantRole::Owner | ParticipantRole::Participant => Ok(()),
        _ => Err(SupportError::Forbidden(format!(
            "observers and supervisors do not {what}"
        ))),
    }
}

/// A supervisor started (`watching`) or stopped watching a sub-session of
/// support session `id` without being invited: the customer's window lists
/// them while they watch, and the chat says so (to the customer and the
/// technicians).
pub(crate) async fn supervisor_watch(
    st: &AppState,
    id: &str,
    user_id: &str,
    name: &str,
    watching: bool,
) {
    let changed = st
        .support_hub
        .live
        .with(id, |l| {
            let changed = l.supervise(user_id, name, watching);
            if changed {
                l.send(l.participants_msg());
            }
            changed
        })
        .unwrap_or(false);
    if !changed {
        return;
    }
    let text = if watching {
        format!("{name} (supervisor) is watching")
    } else {
        format!("{name} (supervisor) stopped watching")
    };
    if let Err(e) = chat_line(st, id, ChatFrom::System, "", &text).await {
        tracing::warn!(support = %id, error = %e, "cannot tell the customer about a supervisor");
    }
    publish(st, id).await;
}

/// How a session came to its owner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Taken {
    /// The technician pressed Accept.
    Accepted,
    /// The queue assigned it ([`super::assign`]).
    Assigned,
}

/// `POST …/{id}/accept`: a queue member takes a waiting customer.
///
/// # Errors
/// Unknown session, not a member of its queue, already taken, store.
pub(crate) async fn accept(st: &AppState, id: &str, who: &Subject) -> Result<(), SupportError> {
    accept_as(st, id, who, Taken::Accepted).await
}

/// A waiting session becomes `who`'s, by their Accept or by assignment.
///
/// # Errors
/// As [`accept`].
pub(crate) async fn accept_as(
    st: &AppState,
    id: &str,
    who: &Subject,
    how: Taken,
) -> Result<(), SupportError> {
    let Some(user_id) = who.user_id().map(|u| u.as_str().to_owned()) else {
        return Err(SupportError::Forbidden(
            "support sessions are accepted by technicians, not API clients".into(),
        ));
    };
    let now = ids::now_ms();
    let mut w = st.db.write().await?;
    let found: Option<(String, String, String)> = sql!(w, |c| sqlx::query_as(
        "SELECT queue, group_name, state FROM support_sessions WHERE id = $1"
    )
    .bind(id)
    .fetch_optional(&mut *c)
    .await)?;
    let Some((queue, group, state)) = found.filter(|(_, g, _)| who.groups.contains(g)) else {
        return Err(SupportError::UnknownSession(id.to_owned()));
    };
    let member = queues::get_in(&mut w, &queue)
        .await?
        .is_some_and(|q| q.has_member(&user_id));
    if !member {
        return Err(SupportError::Forbidden(format!(
            "you are not a member of queue `{queue}`"
        )));
    }
    if state != "waiting" {
        return Err(SupportError::AlreadyTaken(state));
    }
    let taken = sql!(w, |c| sqlx::query(
        "UPDATE support_sessions SET state = 'active', accepted_at = $1, owner_id = $2,
                owner_name = $3
          WHERE id = $4 AND state = 'waiting'"
    )
    .bind(now)
    .bind(&user_id)
    .bind(&who.name)
    .bind(id)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    if taken != 1 {
        return Err(SupportError::AlreadyTaken("active".into()));
    }
    insert_participant(&mut w, id, &user_id, &who.name, ParticipantRole::Owner, now).await?;
    w.audit(
        AuditEvent::new(&who.name, AuditAction::SupportAccept, id)
            .detail(match how {
                Taken::Accepted => format!("queue={queue}"),
                Taken::Assigned => format!("queue={queue} assigned=auto"),
            })
            .group(&group),
    )
    .await?;
    w.commit().await?;
    st.support_hub.live.with(id, |l| {
        l.state = SupportState::Active;
        l.people.retain(|p| p.user_id != user_id);
        l.people.insert(
            0,
            Person {
                user_id: user_id.clone(),
                name: who.name.clone(),
                role: ParticipantRole::Owner,
                joined_at_ms: now,
            },
        );
        l.send(AssistMsg::Status {
            state: SupportState::Active,
            queue: l.queue.clone(),
            position: None,
        });
        l.send(l.participants_msg());
    });
    publish(st, id).await;
    Ok(())
}

async fn insert_participant(
    e: &mut dyn Exec,
    id: &str,
    user_id: &str,
    name: &str,
    role: ParticipantRole,
    now: i64,
) -> Result<(), sqlx::Error> {
    sql!(e, |c| sqlx::query(
        "INSERT INTO support_participants (support_id, user_id, joined_at, username, role)
         VALUES ($1, $2, $3, $4, $5)"
    )
    .bind(id)
    .bind(user_id)
    .bind(now)
    .bind(name)
    .bind(role.as_str())
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}

/// A chat text as kept: control characters (but newlines and tabs) out,
/// at most [`assist::MAX_CHAT_BYTES`], not empty.
fn clean_chat(text: &str) -> Result<String, SupportError> {
    if text.len() > assist::MAX_CHAT_BYTES {
        return Err(SupportError::Invalid(format!(
            "text: at most {} bytes",
            assist::MAX_CHAT_BYTES
        )));
    }
    let clean: String = text
        .chars()
        .filter(|c| !c.is_control() || matches!(c, '\n' | '\t'))
        .collect();
    let clean = clean.trim().to_owned();
    if clean.is_empty() {
        return Err(SupportError::Invalid("text: empty".into()));
    }
    Ok(clean)
}

/// Stores and passes on one chat line.
pub(crate) async fn chat_line(
    st: &AppState,
    id: &str,
    from_kind: ChatFrom,
    from: &str,
    text: &str,
) -> Result<ChatLine, SupportError> {
    let seq = st
        .support_hub
        .live
        .with(id, |l| {
            l.chat_seq += 1;
            l.chat_seq
        })
        .ok_or_else(|| SupportError::NotLive(id.to_owned()))?;
    let at_ms = ids::now_ms();
    let kind = match from_kind {
        ChatFrom::Customer => "customer",
        ChatFrom::Technician => "technician",
        ChatFrom::System => "system",
    };
    let mut w = st.db.write().await?;
    let (group, wrapped) = key_of(&mut w, id).await?;
    let key = st
        .keys
        .unwrap(crypto::SESSION_KEY_PURPOSE, &WrappedKey::from(wrapped))?;
    let aad = field_aad(id, &format!("chat\0{seq}\0{kind}"));
    let sealed = crypto::seal(&key, &aad, text.as_bytes())?;
    sql!(w, |c| sqlx::query(
        "INSERT INTO support_messages (support_id, seq, at, sender_kind, sender, sealed)
         VALUES ($1, $2, $3, $4, $5, $6)"
    )
    .bind(id)
    .bind(seq as i64)
    .bind(at_ms)
    .bind(kind)
    .bind(from)
    .bind(&sealed)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    let actor = match from_kind {
        ChatFrom::Customer => customer_actor(from),
        ChatFrom::Technician => from.to_owned(),
        ChatFrom::System => "(gateway)".to_owned(),
    };
    w.audit(
        AuditEvent::new(actor, AuditAction::SupportChat, id)
            .detail(format!("from={kind} bytes={}", text.len()))
            .group(&group),
    )
    .await?;
    w.commit().await?;
    let line = ChatLine {
        seq,
        at_ms,
        from_kind,
        from: from.to_owned(),
        text: text.to_owned(),
    };
    let audience = st
        .support_hub
        .live
        .with(id, |l| {
            l.send(AssistMsg::Chat(line.clone()));
            (
                l.queue.clone(),
                l.people.iter().map(|p| p.user_id.clone()).collect(),
            )
        })
        .unwrap_or_default();
    st.support_hub.publish_to(
        &audience.0,
        audience.1,
        SupportEvent::Chat {
            id: id.to_owned(),
            line: api_line(&line),
        },
    );
    Ok(line)
}

fn api_line(l: &ChatLine) -> api::ChatLine {
    api::ChatLine {
        seq: l.seq,
        at: ids::rfc3339(l.at_ms),
        from_kind: match l.from_kind {
            ChatFrom::Customer => "customer",
            ChatFrom::Technician => "technician",
            ChatFrom::System => "system",
        }
        .to_owned(),
        from: l.from.clone(),
        text: l.text.clone(),
    }
}

/// The session's group and wrapped data key.
async fn key_of(e: &mut dyn Exec, id: &str) -> Result<(String, String), SupportError> {
    let found: Option<(String, String)> = sql!(e, |c| sqlx::query_as(
        "SELECT group_name, wrapped_key FROM support_sessions WHERE id = $1"
    )
    .bind(id)
    .fetch_optional(&mut *c)
    .await)?;
    found.ok_or_else(|| SupportError::UnknownSession(id.to_owned()))
}

/// The endpoint group of support session `id` (its scope).
///
/// # Errors
/// Unknown session, store.
pub(crate) async fn group_of(db: &crate::store::Store, id: &str) -> Result<String, SupportError> {
    let mut c = db.conn().await?;
    Ok(key_of(&mut c, id).await?.0)
}

/// `POST …/{id}/chat`: a technician taking part writes to the customer.
///
/// # Errors
/// Not taking part, bad text, store.
pub(crate) async fn technician_chat(
    st: &AppState,
    id: &str,
    who: &Subject,
    text: &str,
) -> Result<api::ChatLine, SupportError> {
    working(st, id, who, "chat")?;
    let text = clean_chat(text)?;
    let line = chat_line(st, id, ChatFrom::Technician, &who.name, &text).await?;
    Ok(api_line(&line))
}

/// One grant event, stored and audited.
async fn grant_event(
    st: &AppState,
    id: &str,
    right: Right,
    event: &str,
    by: &str,
) -> Result<(), SupportError> {
    let Some((seq, used)) = st.support_hub.live.with(id, |l| {
        l.grant_seq += 1;
        if event == "allowed" {
            l.used = l.used.with(right);
        }
        (l.grant_seq, l.used)
    }) else {
        return Err(SupportError::NotLive(id.to_owned()));
    };
    let now = ids::now_ms();
    let mut w = st.db.write().await?;
    let (group, _) = key_of(&mut w, id).await?;
    sql!(w, |c| sqlx::query(
        "INSERT INTO support_grants (support_id, seq, right_name, event, by_name, at)
         VALUES ($1, $2, $3, $4, $5, $6)"
    )
    .bind(id)
    .bind(seq as i64)
    .bind(right.as_str())
    .bind(event)
    .bind(by)
    .bind(now)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    if event == "allowed" {
        let used: Vec<&str> = used.iter().map(Right::as_str).collect();
        let used = serde_json::to_string(&used).unwrap_or_else(|_| "[]".into());
        sql!(w, |c| sqlx::query(
            "UPDATE support_sessions SET rights_used = $1 WHERE id = $2"
        )
        .bind(&used)
        .bind(id)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))?;
    }
    w.audit(
        AuditEvent::new(by, AuditAction::SupportRight, id)
            .outcome(event)
            .detail(format!("right={right} event={event} by={by}"))
            .group(&group),
    )
    .await?;
    w.commit().await?;
    Ok(())
}

/// `POST …/{id}/rights`: ask the customer for a right. Already granted:
/// nothing to ask.
///
/// # Errors
/// Not taking part, the client offline, store.
pub(crate) async fn ask(
    st: &AppState,
    id: &str,
    who: &Subject,
    right: Right,
) -> Result<(), SupportError> {
    working(st, id, who, "ask for rights")?;
    let asked = st.support_hub.live.with(id, |l| {
        if !l.online() {
            return Err(SupportError::Offline);
        }
        if l.granted.contains(right) {
            return Ok(None);
        }
        if let Some((&n, _)) = l.asked.iter().find(|(_, r)| **r == right) {
            return Ok(Some(n));
        }
        let n = l.ask(right);
        l.send(AssistMsg::Ask {
            id: n,
            right,
            technician: who.name.clone(),
        });
        Ok(Some(n))
    });
    let Some(n) = asked.ok_or_else(|| SupportError::NotLive(id.to_owned()))?? else {
        return Ok(());
    };
    grant_event(st, id, right, "asked", &who.name).await?;
    publish(st, id).await;
    // Unanswered asks go (the client denies them itself after the same time).
    let (st2, id2) = (st.clone(), id.to_owned());
    st.tasks.spawn(async move {
        let wait = std::time::Duration::from_secs(u64::from(assist::ASK_TIMEOUT_SECS) + 5);
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = st2.shutdown.cancelled() => return,
        }
        let gone = st2
            .support_hub
            .live
            .with(&id2, |l| l.asked.remove(&n).is_some())
            .unwrap_or(false);
        if gone {
            let _ = grant_event(&st2, &id2, right, "denied", "(no answer)").await;
            publish(&st2, &id2).await;
        }
    });
    Ok(())
}

/// Ends a support session (technician, customer, or the gateway) and tells
/// everyone; `false` when it had ended already.
///
/// # Errors
/// The store failed.
pub(crate) async fn end(
    st: &AppState,
    id: &str,
    actor: &str,
    reason: &str,
) -> Result<bool, SupportError> {
    let now = ids::now_ms();
    let mut w = st.db.write().await?;
    let ended = end_in(&mut w, id, actor, reason, now).await?;
    w.commit().await?;
    if !ended {
        return Ok(false);
    }
    if let Some(live) = st.support_hub.live.remove(id) {
        live.send(AssistMsg::End {
            reason: reason.to_owned(),
        });
        // The client may rate the session before it closes its connection.
    }
    // Sub-sessions of the session end with it.
    st.sessions.changed();
    publish(st, id).await;
    Ok(true)
}

async fn end_in(
    w: &mut WriteTx,
    id: &str,
    actor: &str,
    reason: &str,
    now: i64,
) -> Result<bool, SupportError> {
    let found: Option<String> = sql!(w, |c| sqlx::query_scalar(
        "UPDATE support_sessions SET state = 'ended', ended_at = $1, end_reason = $2,
                ticket_hash = NULL, download_hash = NULL
          WHERE id = $3 AND state <> 'ended'
         RETURNING group_name"
    )
    .bind(now)
    .bind(reason)
    .bind(id)
    .fetch_optional(&mut *c)
    .await)?;
    let Some(group) = found else {
        return Ok(false);
    };
    sql!(w, |c| sqlx::query(
        "UPDATE support_participants SET left_at = $1, left_reason = 'ended'
          WHERE support_id = $2 AND left_at IS NULL"
    )
    .bind(now)
    .bind(id)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    w.audit(
        AuditEvent::new(actor, AuditAction::SupportEnd, id)
            .outcome("ended")
            .detail(format!("reason={reason}"))
            .group(&group),
    )
    .await?;
    Ok(true)
}

/// `POST …/{id}/end`: the owner (or a participant) ends the session.
///
/// # Errors
/// Not the owner, store.
pub(crate) async fn technician_end(
    st: &AppState,
    id: &str,
    who: &Subject,
) -> Result<(), SupportError> {
    match role(st, id, who) {
        Ok(ParticipantRole::Owner | ParticipantRole::Participant) => {}
        Ok(_) => {
            return Err(SupportError::Forbidden(
                "only the technicians working on the session end it".into(),
            ));
        }
        // Not live (its client never came back): a queue member may end it.
        Err(SupportError::NotLive(_)) => {}
        Err(e) => return Err(e),
    }
    let reason = format!("ended by {}", who.name);
    if !end(st, id, &who.name, &reason).await? {
        return Err(SupportError::UnknownSession(id.to_owned()));
    }
    Ok(())
}

/// One message from the customer's client.
pub(crate) async fn from_client(st: &AppState, id: &str, customer: &str, msg: AssistMsg) {
    if let Err(e) = msg.check() {
        tracing::info!(support = %id, error = %e, "customer client sent a message out of bounds");
        return;
    }
    let result = match msg {
        AssistMsg::SendChat { text } => {
            let ok = st
                .support_hub
                .live
                .with(id, Live::customer_may_chat)
                .unwrap_or(false);
            match clean_chat(&text) {
                Ok(text) if ok => chat_line(st, id, ChatFrom::Customer, customer, &text)
                    .await
                    .map(drop),
                Ok(_) => {
                    tracing::info!(support = %id, "customer chat over its rate; dropped");
                    Ok(())
                }
                Err(_) => Ok(()),
            }
        }
        AssistMsg::Answer { id: n, allowed } => answer(st, id, customer, n, allowed).await,
        AssistMsg::Revoke { right } => {
            let was = st.support_hub.live.with(id, |l| {
                let was = l.granted.contains(right);
                l.granted = l.granted.without(right);
                was
            });
            if was == Some(true) {
                let r = grant_event(st, id, right, "revoked", &customer_actor(customer)).await;
                st.sessions.changed();
                publish(st, id).await;
                r
            } else {
                Ok(())
            }
        }
        AssistMsg::Granted { rights } => granted(st, id, customer, rights).await,
        AssistMsg::EndSession => end(st, id, &customer_actor(customer), "ended by the customer")
            .await
            .map(drop),
        AssistMsg::Rating { stars, comment } => rate(st, id, customer, stars, &comment).await,
        AssistMsg::PinResult { ok, message } => {
            super::pin::result(st, id, customer, ok, &message).await
        }
        other => {
            tracing::debug!(support = %id, ?other, "ignoring a gateway-side message from a client");
            Ok(())
        }
    };
    if let Err(e) = result {
        tracing::warn!(support = %id, error = %e, "cannot handle the customer's message");
    }
}

async fn answer(
    st: &AppState,
    id: &str,
    customer: &str,
    n: u64,
    allowed: bool,
) -> Result<(), SupportError> {
    let Some(Some(right)) = st.support_hub.live.with(id, |l| {
        let right = l.asked.remove(&n)?;
        if allowed {
            l.granted = l.granted.with(right);
        }
        Some(right)
    }) else {
        return Ok(());
    };
    let event = if allowed { "allowed" } else { "denied" };
    let r = grant_event(st, id, right, event, &customer_actor(customer)).await;
    publish(st, id).await;
    r
}

/// The client's own account of what it enforces: what it dropped is
/// recorded as revoked (and sub-sessions re-checked), and the fold
/// follows it (it never gains what the customer did not allow: the
/// gateway keeps the smaller of the two).
async fn granted(
    st: &AppState,
    id: &str,
    customer: &str,
    rights: Rights,
) -> Result<(), SupportError> {
    let Some(dropped) = st.support_hub.live.with(id, |l| {
        let dropped: Vec<Right> = l.granted.iter().filter(|r| !rights.contains(*r)).collect();
        l.granted = l.granted.iter().filter(|r| rights.contains(*r)).collect();
        dropped
    }) else {
        return Ok(());
    };
    if dropped.is_empty() {
        return Ok(());
    }
    st.sessions.changed();
    for right in dropped {
        grant_event(st, id, right, "revoked", &customer_actor(customer)).await?;
    }
    publish(st, id).await;
    Ok(())
}

async fn rate(
    st: &AppState,
    id: &str,
    customer: &str,
    stars: u8,
    comment: &str,
) -> Result<(), SupportError> {
    let mut w = st.db.write().await?;
    let (group, wrapped) = key_of(&mut w, id).await?;
    let comment = crate::agents::reported::text(comment.trim(), super::keys::PROBLEM_MAX);
    let sealed = if comment.is_empty() {
        None
    } else {
        let key = st
            .keys
            .unwrap(crypto::SESSION_KEY_PURPOSE, &WrappedKey::from(wrapped))?;
        Some(crypto::seal(
            &key,
            &field_aad(id, "comment"),
            comment.as_bytes(),
        )?)
    };
    let n = sql!(w, |c| sqlx::query(
        "UPDATE support_sessions SET rating = $1, comment_sealed = $2
          WHERE id = $3 AND state = 'ended' AND rating IS NULL"
    )
    .bind(i64::from(stars))
    .bind(sealed.as_deref())
    .bind(id)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    if n == 1 {
        w.audit(
            AuditEvent::new(customer_actor(customer), AuditAction::SupportEnd, id)
                .outcome("rated")
                .detail(format!("rating={stars} comment_bytes={}", comment.len()))
                .group(&group),
        )
        .await?;
    }
    w.commit().await?;
    Ok(())
}

/// A technician someone may hand a session to or invite: a member of a
/// queue of the session's group (a team working on those machines).
async fn teammate(
    e: &mut dyn Exec,
    group: &str,
    username: &str,
) -> Result<(String, String), SupportError> {
    let all = queues::list_in(e).await?;
    all.iter()
        .filter(|q| q.group == group)
        .flat_map(|q| q.members.iter())
        .find(|(_, name)| name.eq_ignore_ascii_case(username))
        .cloned()
        .ok_or_else(|| {
            SupportError::Invalid(format!(
                "user: `{username}` is not a member of a queue of this session's group"
            ))
        })
}

/// Closes `user_id`'s open participation row.
async fn leave_row(
    e: &mut dyn Exec,
    id: &str,
    user_id: &str,
    reason: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sql!(e, |c| sqlx::query(
        "UPDATE support_participants SET left_at = $1, left_reason = $2
          WHERE support_id = $3 AND user_id = $4 AND left_at IS NULL"
    )
    .bind(now)
    .bind(reason)
    .bind(id)
    .bind(user_id)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}

/// What a transfer hands the session to.
#[derive(Debug)]
pub(crate) enum TransferTo {
    User(String),
    Queue(String),
}

/// `POST …/{id}/transfer`: the owner hands the session to another
/// technician (who owns it at once) or back to a queue (where it waits
/// again). The rights the customer granted are reset: they allow again for
/// the new person. The old owner's sub-sessions end.
///
/// # Errors
/// Not the owner, an unknown target, store.
pub(crate) async fn transfer(
    st: &AppState,
    id: &str,
    who: &Subject,
    to: TransferTo,
) -> Result<String, SupportError> {
    if role(st, id, who)? != ParticipantRole::Owner {
        return Err(SupportError::Forbidden(
            "only the session's owner transfers it".into(),
        ));
    }
    let me = who
        .user_id()
        .map(|u| u.as_str().to_owned())
        .unwrap_or_default();
    let now = ids::now_ms();
    let mut w = st.db.write().await?;
    let (group, _) = key_of(&mut w, id).await?;
    let old_queue = st
        .support_hub
        .live
        .with(id, |l| l.queue.clone())
        .unwrap_or_default();
    leave_row(&mut w, id, &me, "transferred", now).await?;
    let (target, new_owner, new_queue) = match &to {
        TransferTo::User(name) => {
            let (user_id, username) = teammate(&mut w, &group, name).await?;
            if user_id == me {
                return Err(SupportError::Invalid("user: that is you".into()));
            }
            sql!(w, |c| sqlx::query(
                "UPDATE support_sessions SET owner_id = $1, owner_name = $2 WHERE id = $3"
            )
            .bind(&user_id)
            .bind(&username)
            .bind(id)
            .execute(&mut *c)
            .await
            .map(|r| r.rows_affected()))?;
            leave_row(&mut w, id, &user_id, "became owner", now).await?;
            insert_participant(&mut w, id, &user_id, &username, ParticipantRole::Owner, now)
                .await?;
            (username.clone(), Some((user_id, username)), None)
        }
        TransferTo::Queue(name) => {
            let q = queues::get_in(&mut w, name)
                .await?
                .filter(|q| who.groups.contains(&q.group))
                .ok_or_else(|| SupportError::UnknownQueue(name.clone()))?;
            sql!(w, |c| sqlx::query(
                "UPDATE support_sessions SET state = 'waiting', queue = $1, group_name = $2,
                        owner_id = NULL, owner_name = NULL, accepted_at = NULL
                  WHERE id = $3"
            )
            .bind(&q.name)
            .bind(&q.group)
            .bind(id)
            .execute(&mut *c)
            .await
            .map(|r| r.rows_affected()))?;
            // Everyone else leaves with the owner.
            sql!(w, |c| sqlx::query(
                "UPDATE support_participants SET left_at = $1, left_reason = 'transferred'
                  WHERE support_id = $2 AND left_at IS NULL"
            )
            .bind(now)
            .bind(id)
            .execute(&mut *c)
            .await
            .map(|r| r.rows_affected()))?;
            (format!("queue {}", q.name), None, Some((q.name, q.group)))
        }
    };
    w.audit(
        AuditEvent::new(&who.name, AuditAction::SupportTransfer, id)
            .detail(format!("to={target}"))
            .group(&group),
    )
    .await?;
    w.commit().await?;
    let reason = format!("{} transferred the session to {target}", who.name);
    st.support_hub.live.with(id, |l| {
        l.granted = Rights::NONE;
        l.asked.clear();
        match (&new_owner, &new_queue) {
            (Some((user_id, name)), _) => {
                l.people
                    .retain(|p| p.user_id != me && &p.user_id != user_id);
                l.people.insert(
                    0,
                    Person {
                        user_id: user_id.clone(),
                        name: name.clone(),
                        role: ParticipantRole::Owner,
                        joined_at_ms: now,
                    },
                );
            }
            (None, Some((queue, group))) => {
                l.people.clear();
                l.queue.clone_from(queue);
                l.group.clone_from(group);
                l.state = SupportState::Waiting;
                l.told_position = None;
            }
            (None, None) => {}
        }
        l.send(AssistMsg::Reset {
            reason: reason.clone(),
        });
        l.send(l.participants_msg());
        if l.state == SupportState::Waiting {
            l.send(AssistMsg::Status {
                state: SupportState::Waiting,
                queue: l.queue.clone(),
                position: None,
            });
        }
    });
    let _ = chat_line(st, id, ChatFrom::System, "", &reason).await;
    // The old owner's sub-sessions end; grants are gone.
    st.sessions.changed();
    if new_queue.is_some() && !old_queue.is_empty() {
        st.support_hub.publish(
            &old_queue,
            SupportEvent::Left {
                id: id.to_owned(),
                reason: reason.clone(),
            },
        );
    }
    publish(st, id).await;
    if let Some((queue, _)) = new_queue {
        super::assign::spawn(st, queue);
    }
    Ok(target)
}

/// `POST …/{id}/invite`: the owner or a participant invites a teammate as
/// `participant` (chats, may open sub-sessions with the rights granted) or
/// `observer` (reads along). The customer sees them at once.
///
/// # Errors
/// Not taking part, an unknown user or role, store.
pub(crate) async fn invite(
    st: &AppState,
    id: &str,
    who: &Subject,
    username: &str,
    as_role: &str,
) -> Result<(), SupportError> {
    let invited_role = match as_role {
        "participant" => ParticipantRole::Participant,
        "observer" => ParticipantRole::Observer,
        other => {
            return Err(SupportError::Invalid(format!(
                "as: `{other}` (expected participant or observer)"
            )));
        }
    };
    working(st, id, who, "invite")?;
    let now = ids::now_ms();
    let mut w = st.db.write().await?;
    let (group, _) = key_of(&mut w, id).await?;
    let (user_id, name) = teammate(&mut w, &group, username).await?;
    let already = st
        .support_hub
        .live
        .with(id, |l| l.role_of(&user_id).is_some())
        .unwrap_or(false);
    if already {
        return Err(SupportError::Exists(format!(
            "`{name}` already takes part in this session"
        )));
    }
    insert_participant(&mut w, id, &user_id, &name, invited_role, now).await?;
    w.audit(
        AuditEvent::new(&who.name, AuditAction::SupportParticipant, id)
            .outcome(format!("joined:{}", invited_role.as_str()))
            .detail(format!("user={name} by={}", who.name))
            .group(&group),
    )
    .await?;
    w.commit().await?;
    let queue = st
        .support_hub
        .live
        .with(id, |l| {
            l.people.push(Person {
                user_id: user_id.clone(),
                name: name.clone(),
                role: invited_role,
                joined_at_ms: now,
            });
            l.send(l.participants_msg());
            l.queue.clone()
        })
        .unwrap_or_default();
    let text = format!("{name} joined as {}", invited_role.as_str());
    let _ = chat_line(st, id, ChatFrom::System, "", &text).await;
    st.support_hub.publish_to(
        &queue,
        vec![user_id],
        SupportEvent::Invite {
            id: id.to_owned(),
            by: who.name.clone(),
            role: invited_role.as_str().to_owned(),
        },
    );
    publish(st, id).await;
    Ok(())
}

/// `DELETE …/{id}/participants/{user}`: the owner removes someone, or a
/// participant or observer leaves. The owner cannot leave this way (they
/// transfer or end).
///
/// # Errors
/// Not allowed, not taking part, store.
pub(crate) async fn remove(
    st: &AppState,
    id: &str,
    who: &Subject,
    username: &str,
) -> Result<(), SupportError> {
    let mine = role(st, id, who)?;
    let target = st
        .support_hub
        .live
        .with(id, |l| {
            l.people
                .iter()
                .find(|p| p.name.eq_ignore_ascii_case(username))
                .cloned()
        })
        .flatten()
        .ok_or_else(|| SupportError::Invalid(format!("user: `{username}` does not take part")))?;
    let me = who
        .user_id()
        .map(|u| u.as_str().to_owned())
        .unwrap_or_default();
    let leaving = target.user_id == me;
    if target.role == ParticipantRole::Owner {
        return Err(SupportError::Invalid(
            "the owner does not leave: transfer the session or end it".into(),
        ));
    }
    if !leaving && mine != ParticipantRole::Owner {
        return Err(SupportError::Forbidden(
            "only the session's owner removes others".into(),
        ));
    }
    let reason = if leaving { "left" } else { "removed" };
    let now = ids::now_ms();
    let mut w = st.db.write().await?;
    let (group, _) = key_of(&mut w, id).await?;
    leave_row(&mut w, id, &target.user_id, reason, now).await?;
    w.audit(
        AuditEvent::new(&who.name, AuditAction::SupportParticipant, id)
            .outcome(reason)
            .detail(format!("user={}", target.name))
            .group(&group),
    )
    .await?;
    w.commit().await?;
    st.support_hub.live.with(id, |l| {
        l.people.retain(|p| p.user_id != target.user_id);
        l.send(l.participants_msg());
    });
    let text = if leaving {
        format!("{} left", target.name)
    } else {
        format!("{} was removed by {}", target.name, who.name)
    };
    let _ = chat_line(st, id, ChatFrom::System, "", &text).await;
    st.sessions.changed();
    publish(st, id).await;
    Ok(())
}

/// `GET …/{id}/transcript`: the chat of a support session, opened. For
/// those who take or took part in it; others need `view-audit` on its group
/// (reading it is then audited like viewing a recording).
///
/// # Errors
/// Unknown session, not allowed, store, a key that does not open.
pub(crate) async fn transcript(
    st: &AppState,
    id: &str,
    who: &Subject,
) -> Result<Vec<api::ChatLine>, SupportError> {
    use crate::rbac::{Action, Decision, Resource};
    let mut c = st.db.conn().await?;
    let (group, wrapped) = key_of(&mut c, id).await?;
    // Those who took part at some point (the history has them).
    let user = who
        .user_id()
        .map(|u| u.as_str().to_owned())
        .unwrap_or_default();
    let took_part: i64 = sql!(c, |c| sqlx::query_scalar(
        "SELECT COUNT(*) FROM support_participants WHERE support_id = $1 AND user_id = $2"
    )
    .bind(id)
    .bind(&user)
    .fetch_one(&mut *c)
    .await)?;
    let taking_part = took_part > 0;
    if !taking_part {
        let resource = Resource::Endpoint { group: &group };
        if let Decision::Forbid(_) = crate::rbac::authorize(who, Action::ReadRecordings, resource) {
            return Err(SupportError::Forbidden(
                "only those taking part (or auditors of its group) read a support session's chat"
                    .into(),
            ));
        }
        st.db
            .audit_or_log(
                AuditEvent::new(&who.name, AuditAction::RecordingView, id)
                    .detail(format!("support={id} transcript"))
                    .group(&group),
            )
            .await;
    }
    let rows: Vec<(i64, i64, String, String, Vec<u8>)> = sql!(c, |c| sqlx::query_as(
        "SELECT seq, at, sender_kind, sender, sealed FROM support_messages
          WHERE support_id = $1 ORDER BY seq"
    )
    .bind(id)
    .fetch_all(&mut *c)
    .await)?;
    let key = st
        .keys
        .unwrap(crypto::SESSION_KEY_PURPOSE, &WrappedKey::from(wrapped))?;
    rows.into_iter()
        .map(|(seq, at, kind, from, sealed)| {
            let aad = field_aad(id, &format!("chat\0{seq}\0{kind}"));
            let text = crypto::open(&key, &aad, &sealed)?;
            Ok(api::ChatLine {
                seq: seq as u64,
                at: ids::rfc3339(at),
                from_kind: kind,
                from,
                text: String::from_utf8_lossy(&text).into_owned(),
            })
        })
        .collect()
}
