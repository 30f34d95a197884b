//! `jg whoami [--json]`: the logged-in user as the gateway sees them.

use anyhow::Context;
use jumpgate_api_types::Me;
use jumpgate_client::Client;

use crate::args::list_cell;
use crate::table;

pub(crate) async fn run(client: &Client, json: bool) -> anyhow::Result<()> {
    let me = client.me().await.context("asking who you are")?;
    if json {
        outln!("{}", serde_json::to_string_pretty(&me)?)?;
    } else {
        out!("{}", render(&me))?;
    }
    Ok(())
}

fn render(me: &Me) -> String {
    let mfa = match (me.mfa_enabled, me.mfa_enrollment_required) {
        (true, _) => "enabled",
        (false, true) => "required but not enrolled: run jg mfa enroll",
        (false, false) => "not enabled",
    };
    let password = if me.password_change_required {
        "expired: run jg passwd"
    } else {
        "ok"
    };
    table::fields(&[
        ("User", me.username.clone()),
        ("Role", me.role.clone()),
        ("Groups", list_cell(&me.groups)),
        ("Permissions", list_cell(&me.permissions)),
        ("MFA", mfa.to_owned()),
        ("Password", password.to_owned()),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whoami_shows_access_and_what_to_fix() {
        let mut me = Me {
            username: "alice".into(),
            role: "technician".into(),
            permissions: vec!["view".into(), "shell".into()],
            groups: vec!["*".into()],
            mfa_enabled: true,
            mfa_enrollment_required: false,
            password_change_required: false,
        };
        assert_eq!(
            render(&me),
            "User:         alice\n\
             Role:         technician\n\
             Groups:       *\n\
             Permissions:  view,shell\n\
             MFA:          enabled\n\
             Password:     ok\n"
        );
        me.mfa_enabled = false;
        me.mfa_enrollment_required = true;
        me.password_change_required = true;
        me.groups.clear();
        let out = render(&me);
        assert!(out.contains("Groups:       -\n"), "{out}");
        assert!(
            out.contains("required but not enrolled: run jg mfa enroll"),
            "{out}"
        );
        assert!(out.contains("expired: run jg passwd"), "{out}");
    }
}
