//! Who holds an endpoint group: the users and API clients whose `groups`
//! list names it (read by `agents::groups::delete`, which refuses to delete
//! a group still held, so a membership is never left behind to grant a
//! later group of the same name). Holding every group (`*`) names none.

use crate::store::{Exec, sql};

/// The users (`user NAME`) and API clients (`API client NAME`) holding
/// `group` by name, sorted.
///
/// # Errors
/// The store failed.
pub(crate) async fn holding_group(
    e: &mut dyn Exec,
    group: &str,
) -> Result<Vec<String>, sqlx::Error> {
    // The lists are JSON text on both engines, read here rather than with
    // each engine's JSON functions (a rare administrative check).
    let users: Vec<(String, String)> = sql!(e, |c| sqlx::query_as(
        "SELECT username, groups FROM users ORDER BY username"
    )
    .fetch_all(&mut *c)
    .await)?;
    let clients: Vec<(String, String)> = sql!(e, |c| sqlx::query_as(
        "SELECT name, groups FROM api_clients ORDER BY name"
    )
    .fetch_all(&mut *c)
    .await)?;
    let holds = |list: &str| {
        serde_json::from_str::<Vec<String>>(list)
            .unwrap_or_default()
            .iter()
            .any(|g| g == group)
    };
    Ok(users
        .iter()
        .filter(|(_, l)| holds(l))
        .map(|(n, _)| format!("user {n}"))
        .chain(
            clients
                .iter()
                .filter(|(_, l)| holds(l))
                .map(|(n, _)| format!("API client {n}")),
        )
        .collect())
}
