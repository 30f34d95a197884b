//! This domain's tables, on both engines: its part of each schema version
//! (`store::migrations`; the registry of every domain is `crate::schema`).
//! A version's parts are applied in one transaction, in the registry's
//! domain order. Never edit a released part: add a version.

use crate::store::migrations::{DomainSchema, Part};

/// `rbac`: the stored roles.
pub(crate) const ROLES: DomainSchema = DomainSchema {
    domain: "rbac",
    sqlite: &[
        // 2: the stored roles and the built-in ones.
        Part {
            version: 2,
            sql: r#"
    CREATE TABLE roles (
        name        TEXT PRIMARY KEY,
        description TEXT NOT NULL DEFAULT '',
        permissions TEXT NOT NULL,          -- JSON array of permission names
        builtin     INTEGER NOT NULL DEFAULT 0
    );
    INSERT INTO roles (name, description, permissions, builtin) VALUES
        ('admin', 'Full control of the site',
         '["view","shell","exec","files","forward","manage-users","manage-endpoints","view-audit"]', 1),
        ('technician', 'Remote access to endpoints in the user''s groups',
         '["view","shell","exec","files","forward"]', 1),
        ('auditor', 'Reads endpoints in the user''s groups and the session log',
         '["view","view-audit"]', 1);

"#,
        },
        // 5: the built-in admin role gets the vault permissions.
        Part {
            version: 5,
            sql: r"    UPDATE roles SET permissions = json_insert(permissions,
            '$[#]', 'vault-read', '$[#]', 'vault-write', '$[#]', 'vault-purge')
        WHERE name = 'admin' AND builtin = 1;
    ",
        },
        // 10: remote desktop: the built-in admin and technician roles may
        // watch and drive screens (auditor: neither).
        Part {
            version: 10,
            sql: r"    UPDATE roles SET permissions = json_insert(permissions, '$[#]', 'desktop-view')
        WHERE name IN ('admin', 'technician') AND builtin = 1
          AND NOT EXISTS (SELECT 1 FROM json_each(roles.permissions) WHERE value = 'desktop-view');
    UPDATE roles SET permissions = json_insert(permissions, '$[#]', 'desktop-control')
        WHERE name IN ('admin', 'technician') AND builtin = 1
          AND NOT EXISTS (SELECT 1 FROM json_each(roles.permissions) WHERE value = 'desktop-control');
    ",
        },
        // 12: attended support: admin and technician take customers
        // (`support`), admin may watch any session (`monitor-sessions`), and
        // a built-in `supervisor` role watches and reads the log.
        Part {
            version: 12,
            sql: r#"    UPDATE roles SET permissions = json_insert(permissions, '$[#]', 'support')
        WHERE name IN ('admin', 'technician') AND builtin = 1
          AND NOT EXISTS (SELECT 1 FROM json_each(roles.permissions) WHERE value = 'support');
    UPDATE roles SET permissions = json_insert(permissions, '$[#]', 'monitor-sessions')
        WHERE name = 'admin' AND builtin = 1
          AND NOT EXISTS (SELECT 1 FROM json_each(roles.permissions) WHERE value = 'monitor-sessions');
    INSERT INTO roles (name, description, permissions, builtin)
        SELECT 'supervisor', 'Watches live sessions and support queues in the user''s groups',
               '["view","support","desktop-view","monitor-sessions","view-audit"]', 1
        WHERE NOT EXISTS (SELECT 1 FROM roles WHERE name = 'supervisor');
    "#,
        },
        // 13: endpoint privilege management: admin manages the policy
        // (`epm-manage`) and, with technician, approves elevations
        // (`epm-approve`).
        Part {
            version: 13,
            sql: r"    UPDATE roles SET permissions = json_insert(permissions, '$[#]', 'epm-manage')
        WHERE name = 'admin' AND builtin = 1
          AND NOT EXISTS (SELECT 1 FROM json_each(roles.permissions) WHERE value = 'epm-manage');
    UPDATE roles SET permissions = json_insert(permissions, '$[#]', 'epm-approve')
        WHERE name IN ('admin', 'technician') AND builtin = 1
          AND NOT EXISTS (SELECT 1 FROM json_each(roles.permissions) WHERE value = 'epm-approve');
    ",
        },
        // 17: reading a secret's value is its own right (`vault-checkout`);
        // the built-in admin role keeps it.
        Part {
            version: 17,
            sql: r"    UPDATE roles SET permissions = json_insert(permissions, '$[#]', 'vault-checkout')
        WHERE name = 'admin' AND builtin = 1
          AND NOT EXISTS (SELECT 1 FROM json_each(roles.permissions) WHERE value = 'vault-checkout');
    ",
        },
        // 22: mail alert rules and the SMTP test are `manage-alerts`'.
        Part {
            version: 22,
            sql: r"    UPDATE roles SET permissions = json_insert(permissions, '$[#]', 'manage-alerts')
        WHERE name = 'admin' AND builtin = 1
          AND NOT EXISTS (SELECT 1 FROM json_each(roles.permissions) WHERE value = 'manage-alerts');
    ",
        },
    ],
    postgres: &[
        // 1: the baseline (equal to SQLite schema 8).
        Part {
            version: 1,
            sql: r#"    CREATE TABLE roles (
        name        TEXT PRIMARY KEY,
        description TEXT NOT NULL DEFAULT '',
        permissions TEXT NOT NULL,
        builtin     BIGINT NOT NULL DEFAULT 0
    );
    INSERT INTO roles (name, description, permissions, builtin) VALUES
        ('admin', 'Full control of the site',
         '["view","shell","exec","files","forward","manage-users","manage-endpoints","view-audit","vault-read","vault-write","vault-purge"]', 1),
        ('technician', 'Remote access to endpoints in the user''s groups',
         '["view","shell","exec","files","forward"]', 1),
        ('auditor', 'Reads endpoints in the user''s groups and the session log',
         '["view","view-audit"]', 1);
    "#,
        },
        // 10: as SQLite's 10 (the text stays compact JSON).
        Part {
            version: 10,
            sql: r#"    UPDATE roles SET permissions =
        replace((permissions::jsonb || '["desktop-view"]'::jsonb)::text, ', ', ',')
        WHERE name IN ('admin', 'technician') AND builtin = 1
          AND NOT (permissions::jsonb ? 'desktop-view');
    UPDATE roles SET permissions =
        replace((permissions::jsonb || '["desktop-control"]'::jsonb)::text, ', ', ',')
        WHERE name IN ('admin', 'technician') AND builtin = 1
          AND NOT (permissions::jsonb ? 'desktop-control');
    "#,
        },
        // 12: as SQLite's 12.
        Part {
            version: 12,
            sql: r#"    UPDATE roles SET permissions =
        replace((permissions::jsonb || '["support"]'::jsonb)::text, ', ', ',')
        WHERE name IN ('admin', 'technician') AND builtin = 1
          AND NOT (permissions::jsonb ? 'support');
    UPDATE roles SET permissions =
        replace((permissions::jsonb || '["monitor-sessions"]'::jsonb)::text, ', ', ',')
        WHERE name = 'admin' AND builtin = 1
          AND NOT (permissions::jsonb ? 'monitor-sessions');
    INSERT INTO roles (name, description, permissions, builtin)
        SELECT 'supervisor', 'Watches live sessions and support queues in the user''s groups',
               '["view","support","desktop-view","monitor-sessions","view-audit"]', 1
        WHERE NOT EXISTS (SELECT 1 FROM roles WHERE name = 'supervisor');
    "#,
        },
        // 13: as SQLite's 13.
        Part {
            version: 13,
            sql: r#"    UPDATE roles SET permissions =
        replace((permissions::jsonb || '["epm-manage"]'::jsonb)::text, ', ', ',')
        WHERE name = 'admin' AND builtin = 1
          AND NOT (permissions::jsonb ? 'epm-manage');
    UPDATE roles SET permissions =
        replace((permissions::jsonb || '["epm-approve"]'::jsonb)::text, ', ', ',')
        WHERE name IN ('admin', 'technician') AND builtin = 1
          AND NOT (permissions::jsonb ? 'epm-approve');
    "#,
        },
        // 17: as SQLite's 17.
        Part {
            version: 17,
            sql: r#"    UPDATE roles SET permissions =
        replace((permissions::jsonb || '["vault-checkout"]'::jsonb)::text, ', ', ',')
        WHERE name = 'admin' AND builtin = 1
          AND NOT (permissions::jsonb ? 'vault-checkout');
    "#,
        },
        // 22: as SQLite's 22.
        Part {
            version: 22,
            sql: r#"    UPDATE roles SET permissions =
        replace((permissions::jsonb || '["manage-alerts"]'::jsonb)::text, ', ', ',')
        WHERE name = 'admin' AND builtin = 1
          AND NOT (permissions::jsonb ? 'manage-alerts');
    "#,
        },
    ],
};
