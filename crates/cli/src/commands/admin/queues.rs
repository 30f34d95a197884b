//! `jg admin queues list|create|update|delete`: support queues.

use anyhow::Context;
use clap::Subcommand;
use jumpgate_api_types::support::{CreateQueue, Queue, UpdateQueue};
use jumpgate_client::Client;

use super::print_json;
use crate::table;

#[derive(Debug, Subcommand)]
pub(crate) enum QueuesCommand {
    /// List support queues with their group and members.
    List {
        /// Print the API's JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Create a support queue.
    Create {
        /// The queue's name.
        name: String,
        /// The endpoint group whose permissions govern its sessions.
        #[arg(long)]
        group: String,
        /// What the queue is for (shown on the portal's form).
        #[arg(long, default_value = "")]
        description: String,
        /// A member technician (repeat for several).
        #[arg(long = "member", value_name = "USER")]
        members: Vec<String>,
        /// Not offered on the portal's request form.
        #[arg(long)]
        private: bool,
        /// Give new customers to available members in turn.
        #[arg(long)]
        auto_assign: bool,
        /// Most customers waiting at once (default 200).
        #[arg(long)]
        max_waiting: Option<u32>,
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
    },
    /// Change a support queue (what is given changes).
    Update {
        /// The queue's name.
        name: String,
        #[arg(long)]
        group: Option<String>,
        #[arg(long)]
        description: Option<String>,
        /// The new member list (repeat; replaces the old one).
        #[arg(long = "member", value_name = "USER")]
        members: Vec<String>,
        /// Remove every member.
        #[arg(long, conflicts_with = "members")]
        no_members: bool,
        /// Offer it on the portal's form (`true`) or not (`false`).
        #[arg(long)]
        public: Option<bool>,
        #[arg(long)]
        auto_assign: Option<bool>,
        #[arg(long)]
        max_waiting: Option<u32>,
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delete a support queue.
    Delete {
        /// The queue's name.
        name: String,
    },
}

pub(crate) async fn run(client: &Client, cmd: QueuesCommand) -> anyhow::Result<()> {
    match cmd {
        QueuesCommand::List { json } => {
            let qs = client.queues().await.context("listing queues")?;
            if json {
                print_json(&qs)?;
            } else {
                out!("{}", render(&qs))?;
            }
        }
        QueuesCommand::Create {
            name,
            group,
            description,
            members,
            private,
            auto_assign,
            max_waiting,
            json,
        } => {
            let req = CreateQueue {
                name: name.clone(),
                description,
                group,
                public: !private,
                auto_assign,
                max_waiting,
                members,
            };
            let q = client
                .create_queue(&req)
                .await
                .with_context(|| format!("creating queue {name}"))?;
            if json {
                print_json(&q)?;
            } else {
                outln!("Created queue {} (group {})", q.name, q.group)?;
            }
        }
        QueuesCommand::Update {
            name,
            group,
            description,
            members,
            no_members,
            public,
            auto_assign,
            max_waiting,
            json,
        } => {
            let members = if no_members {
                Some(Vec::new())
            } else if members.is_empty() {
                None
            } else {
                Some(members)
            };
            let req = UpdateQueue {
                description,
                group,
                public,
                auto_assign,
                max_waiting,
                members,
            };
            if req.description.is_none()
                && req.group.is_none()
                && req.public.is_none()
                && req.auto_assign.is_none()
                && req.max_waiting.is_none()
                && req.members.is_none()
            {
                anyhow::bail!(
                    "nothing to change: give --group, --description, --member, --no-members, --public, --auto-assign or --max-waiting"
                );
            }
            let q = client
                .update_queue(&name, &req)
                .await
                .with_context(|| format!("updating queue {name}"))?;
            if json {
                print_json(&q)?;
            } else {
                outln!("Updated queue {}", q.name)?;
            }
        }
        QueuesCommand::Delete { name } => {
            client
                .delete_queue(&name)
                .await
                .with_context(|| format!("deleting queue {name}"))?;
            outln!("Deleted queue {name}")?;
        }
    }
    Ok(())
}

fn render(qs: &[Queue]) -> String {
    let rows: Vec<Vec<String>> = qs
        .iter()
        .map(|q| {
            vec![
                q.name.clone(),
                q.group.clone(),
                if q.public { "public" } else { "private" }.to_owned(),
                if q.auto_assign { "auto" } else { "manual" }.to_owned(),
                q.max_waiting.to_string(),
                if q.members.is_empty() {
                    "-".to_owned()
                } else {
                    q.members.join(",")
                },
                if q.available.is_empty() {
                    "-".to_owned()
                } else {
                    q.available.join(",")
                },
                q.description.clone(),
            ]
        })
        .collect();
    table::render(
        &[
            "NAME",
            "GROUP",
            "PORTAL",
            "ASSIGN",
            "MAX",
            "MEMBERS",
            "AVAILABLE",
            "DESCRIPTION",
        ],
        &rows,
    )
}
