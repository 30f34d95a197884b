//! `jg epm packages …` and `jg epm inventory`: the Package Manager —
//! uploads (one `.deb`, or every `.deb` of a local APT repository), the
//! uploaded packages, trusted publisher keys, the signature setting,
//! assignments per endpoint group, what endpoints did, and which
//! endpoints run what.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use jumpgate_api_types::packages as api;
use jumpgate_client::{Client, InventoryFilter};

use crate::table::{self, printable};

#[derive(Debug, Subcommand)]
pub(crate) enum PackagesCommand {
    /// Upload a .deb: checked by the gateway, stored in blob storage with
    /// a signed manifest.
    Upload {
        /// The package file.
        file: PathBuf,
        /// The publisher's detached minisign signature (FILE.deb.minisig).
        #[arg(long, value_name = "FILE")]
        signature: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Upload every .deb of a local APT repository directory (the files
    /// its `Packages` index names, or else every .deb below it). A
    /// `FILE.deb.minisig` beside a package is sent as its signature.
    ImportApt {
        /// The repository's directory (with `Packages` or `Packages.gz`
        /// files under `dists/`, or just a pool of .deb files).
        dir: PathBuf,
    },
    /// Uploaded packages, by name, newest version first.
    List {
        /// Only this package's versions.
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// One uploaded package.
    Show {
        /// The upload's id (pkg_…, see `list`).
        id: String,
    },
    /// Delete an uploaded package (not while an assignment pins it).
    Delete {
        /// The upload's id (pkg_…, see `list`).
        id: String,
    },
    /// Install (or upgrade/downgrade to --version) a package on every
    /// endpoint of a group.
    Assign {
        /// The package name.
        package: String,
        #[arg(long)]
        group: String,
        /// Pin this version [default: the newest uploaded].
        #[arg(long)]
        version: Option<String>,
    },
    /// Remove a package from every endpoint of a group.
    Remove {
        /// The package name.
        package: String,
        #[arg(long)]
        group: String,
    },
    /// Forget a group's assignment of a package (nothing is removed from
    /// the endpoints).
    Unassign {
        /// The package name.
        package: String,
        #[arg(long)]
        group: String,
    },
    /// Assignments per group.
    Assignments {
        #[arg(long)]
        json: bool,
    },
    /// What each endpoint last did, with the installer's output
    /// (--output).
    Status {
        #[arg(long)]
        endpoint: Option<String>,
        #[arg(long)]
        package: Option<String>,
        /// Print the installer's output of each.
        #[arg(long)]
        output: bool,
        #[arg(long)]
        json: bool,
    },
    /// Trusted publisher keys (minisign).
    Publishers {
        #[command(subcommand)]
        command: PublishersCommand,
    },
    /// Require a trusted publisher's signature on every upload (or not).
    RequireSignature {
        /// `on` or `off`.
        #[arg(value_parser = ["on", "off"])]
        value: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum PublishersCommand {
    /// Trust a publisher's minisign public key (minisign.pub).
    Add {
        /// A name for the publisher (letters, digits, `.`, `_`, `-`).
        name: String,
        /// The public key file.
        key_file: PathBuf,
    },
    List {
        #[arg(long)]
        json: bool,
    },
    Remove {
        /// The publisher's name.
        name: String,
    },
}

/// `jg epm inventory`: which endpoints run which packages.
#[derive(Debug, Args)]
pub(crate) struct InventoryArgs {
    /// The package name.
    #[arg(long)]
    package: Option<String>,
    /// Only versions older than this (Debian order), e.g. 3.0.11.
    #[arg(long, value_name = "VERSION", conflicts_with = "version")]
    version_lt: Option<String>,
    /// A constraint: `<< V`, `<= V`, `= V`, `>= V`, `>> V` (`<`, `>`: strict).
    #[arg(long, value_name = "CONSTRAINT")]
    version: Option<String>,
    /// Only endpoints of this group.
    #[arg(long)]
    group: Option<String>,
    /// Only this endpoint (every package it has).
    #[arg(long)]
    endpoint: Option<String>,
    #[arg(long)]
    json: bool,
}

async fn upload_one(
    client: &Client,
    file: &Path,
    signature: Option<&Path>,
) -> anyhow::Result<(api::PackageInfo, bool)> {
    let deb = tokio::fs::read(file)
        .await
        .with_context(|| format!("reading {}", file.display()))?;
    let sig = match signature {
        Some(p) => Some(
            tokio::fs::read_to_string(p)
                .await
                .with_context(|| format!("reading {}", p.display()))?,
        ),
        None => None,
    };
    let got = client
        .package_upload(deb, sig.as_deref())
        .await
        .with_context(|| format!("uploading {}", file.display()))?;
    Ok(got)
}

fn describe(p: &api::PackageInfo, created: bool) -> String {
    format!(
        "{} {} {} ({}, {}, sha256 {}){}: {}",
        if created {
            "uploaded"
        } else {
            "already there:"
        },
        printable(&p.name),
        printable(&p.version),
        printable(&p.architecture),
        table::human_bytes(p.size),
        &p.sha256,
        p.publisher
            .as_deref()
            .map(|s| format!(", signed by {}", printable(s)))
            .unwrap_or_default(),
        p.id
    )
}

/// The .deb files of an APT repository directory: those its `Packages`
/// indexes name (`Filename:` relative to the repository root), else every
/// `.deb` below it.
fn apt_debs(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut indexes = Vec::new();
    let mut all = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
            let p = e?.path();
            if p.is_dir() {
                stack.push(p);
            } else if p
                .file_name()
                .is_some_and(|n| n == "Packages" || n == "Packages.gz")
            {
                indexes.push(p);
            } else if p.extension().is_some_and(|x| x == "deb") {
                all.push(p);
            }
        }
    }
    let mut named = Vec::new();
    for idx in &indexes {
        let text = if idx.extension().is_some_and(|x| x == "gz") {
            let mut s = String::new();
            std::io::Read::read_to_string(
                &mut flate2::read::GzDecoder::new(std::fs::File::open(idx)?),
                &mut s,
            )
            .with_context(|| format!("reading {}", idx.display()))?;
            s
        } else {
            std::fs::read_to_string(idx).with_context(|| format!("reading {}", idx.display()))?
        };
        for line in text.lines() {
            if let Some(f) = line.strip_prefix("Filename:") {
                let rel = f.trim();
                if rel.split('/').any(|p| p == "..") {
                    bail!("{}: Filename {rel} leaves the repository", idx.display());
                }
                named.push(dir.join(rel));
            }
        }
    }
    let mut out = if named.is_empty() { all } else { named };
    out.sort();
    out.dedup();
    Ok(out)
}

pub(crate) async fn run(client: &Client, cmd: PackagesCommand) -> anyhow::Result<()> {
    match cmd {
        PackagesCommand::Upload {
            file,
            signature,
            json,
        } => {
            let (p, created) = upload_one(client, &file, signature.as_deref()).await?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&p)?)?;
            } else {
                outln!("{}", describe(&p, created))?;
            }
        }
        PackagesCommand::ImportApt { dir } => {
            let debs = apt_debs(&dir)?;
            if debs.is_empty() {
                bail!("no .deb in {}", dir.display());
            }
            let (mut new, mut old, mut failed) = (0, 0, 0);
            for deb in &debs {
                let mut sig = deb.clone().into_os_string();
                sig.push(".minisig");
                let sig = PathBuf::from(sig);
                let sig = sig.is_file().then_some(sig);
                match upload_one(client, deb, sig.as_deref()).await {
                    Ok((p, created)) => {
                        if created {
                            new += 1;
                        } else {
                            old += 1;
                        }
                        outln!("{}", describe(&p, created))?;
                    }
                    Err(e) => {
                        failed += 1;
                        outln!("{}: {e:#}", deb.display())?;
                    }
                }
            }
            outln!("{new} uploaded, {old} already there, {failed} refused")?;
            if failed > 0 {
                bail!("{failed} package(s) of {} were refused", dir.display());
            }
        }
        PackagesCommand::List { name, json } => {
            let list = client
                .packages(name.as_deref())
                .await
                .context("listing packages")?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&list)?)?;
            } else {
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|p| {
                        vec![
                            printable(&p.name).into_owned(),
                            printable(&p.version).into_owned(),
                            printable(&p.architecture).into_owned(),
                            table::human_bytes(p.size),
                            printable(p.publisher.as_deref().unwrap_or("-")).into_owned(),
                            p.id.clone(),
                        ]
                    })
                    .collect();
                out!(
                    "{}",
                    table::render(
                        &["NAME", "VERSION", "ARCH", "SIZE", "PUBLISHER", "ID"],
                        &rows
                    )
                )?;
            }
        }
        PackagesCommand::Show { id } => {
            let p = client.package(&id).await.context("reading the package")?;
            outln!("{}", serde_json::to_string_pretty(&p)?)?;
        }
        PackagesCommand::Delete { id } => {
            client.package_delete(&id).await.context("deleting")?;
            outln!("deleted {id}")?;
        }
        PackagesCommand::Assign {
            package,
            group,
            version,
        } => assign(client, &group, &package, "install", version).await?,
        PackagesCommand::Remove { package, group } => {
            assign(client, &group, &package, "remove", None).await?;
        }
        PackagesCommand::Unassign { package, group } => {
            client
                .package_unassign(&group, &package)
                .await
                .context("unassigning")?;
            outln!("{package} is no longer assigned to {group}")?;
        }
        PackagesCommand::Assignments { json } => {
            let list = client.package_assignments().await.context("listing")?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&list)?)?;
            } else {
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|a| {
                        vec![
                            printable(&a.group).into_owned(),
                            printable(&a.package).into_owned(),
                            a.action.clone(),
                            printable(a.version.as_deref().unwrap_or("newest")).into_owned(),
                            printable(&a.updated_by).into_owned(),
                        ]
                    })
                    .collect();
                out!(
                    "{}",
                    table::render(&["GROUP", "PACKAGE", "ACTION", "VERSION", "BY"], &rows)
                )?;
            }
        }
        PackagesCommand::Status {
            endpoint,
            package,
            output,
            json,
        } => {
            let list = client
                .package_status(endpoint.as_deref(), package.as_deref())
                .await
                .context("reading the status")?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&list)?)?;
            } else if output {
                for s in &list {
                    outln!(
                        "== {} {} {}: {} — {}",
                        printable(&s.endpoint),
                        printable(&s.package),
                        s.action,
                        s.outcome,
                        printable(&s.message)
                    )?;
                    outln!("{}", printable(&s.output))?;
                }
            } else {
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|s| {
                        vec![
                            printable(&s.endpoint).into_owned(),
                            printable(&s.package).into_owned(),
                            s.action.clone(),
                            s.outcome.clone(),
                            printable(s.version.as_deref().unwrap_or("-")).into_owned(),
                            table::truncate(&printable(&s.message), 70),
                        ]
                    })
                    .collect();
                out!(
                    "{}",
                    table::render(
                        &[
                            "ENDPOINT",
                            "PACKAGE",
                            "ACTION",
                            "OUTCOME",
                            "INSTALLED",
                            "MESSAGE"
                        ],
                        &rows
                    )
                )?;
            }
        }
        PackagesCommand::Publishers { command } => match command {
            PublishersCommand::Add { name, key_file } => {
                let text = tokio::fs::read_to_string(&key_file)
                    .await
                    .with_context(|| format!("reading {}", key_file.display()))?;
                let k = client
                    .package_publisher_add(&api::AddPublisher {
                        name,
                        public_key: text,
                    })
                    .await
                    .context("adding the publisher")?;
                outln!(
                    "trusted publisher {} (minisign key {})",
                    printable(&k.name),
                    k.key_id
                )?;
            }
            PublishersCommand::List { json } => {
                let list = client.package_publishers().await.context("listing")?;
                if json {
                    outln!("{}", serde_json::to_string_pretty(&list)?)?;
                } else {
                    let rows: Vec<Vec<String>> = list
                        .iter()
                        .map(|k| {
                            vec![
                                printable(&k.name).into_owned(),
                                k.key_id.clone(),
                                printable(&k.added_by).into_owned(),
                                table::timestamp(&k.added_at),
                            ]
                        })
                        .collect();
                    out!(
                        "{}",
                        table::render(&["NAME", "KEY ID", "BY", "ADDED"], &rows)
                    )?;
                }
            }
            PublishersCommand::Remove { name } => {
                client
                    .package_publisher_remove(&name)
                    .await
                    .context("removing the publisher")?;
                outln!("{} is no longer trusted", printable(&name))?;
            }
        },
        PackagesCommand::RequireSignature { value } => {
            let s = client
                .package_put_settings(&api::PackageSettings {
                    require_signature: value == "on",
                })
                .await
                .context("saving the setting")?;
            outln!(
                "uploads {} a trusted publisher's signature",
                if s.require_signature {
                    "now need"
                } else {
                    "no longer need"
                }
            )?;
        }
    }
    Ok(())
}

async fn assign(
    client: &Client,
    group: &str,
    package: &str,
    action: &str,
    version: Option<String>,
) -> anyhow::Result<()> {
    let a = client
        .package_assign(&api::AssignRequest {
            group: group.to_owned(),
            package: package.to_owned(),
            action: action.to_owned(),
            version,
        })
        .await
        .context("assigning")?;
    match a.resolved_version {
        Some(v) => outln!(
            "{} {} {} on group {}; {} connected endpoint(s) told",
            action,
            printable(package),
            printable(&v),
            printable(group),
            a.notified
        )?,
        None => outln!(
            "{} {} on group {}; {} connected endpoint(s) told",
            action,
            printable(package),
            printable(group),
            a.notified
        )?,
    }
    Ok(())
}

/// `jg epm inventory`.
pub(crate) async fn inventory(client: &Client, a: InventoryArgs) -> anyhow::Result<()> {
    let constraint = match (&a.version_lt, &a.version) {
        (Some(v), _) => Some(format!("<< {v}")),
        (None, Some(c)) => Some(c.clone()),
        (None, None) => None,
    };
    if a.package.is_none() && a.endpoint.is_none() {
        bail!("give --package P (which endpoints run it) or --endpoint E (what it runs)");
    }
    let rows = client
        .package_inventory(&InventoryFilter {
            package: a.package.as_deref(),
            version: constraint.as_deref(),
            group: a.group.as_deref(),
            endpoint: a.endpoint.as_deref(),
        })
        .await
        .context("querying the inventory")?;
    if a.json {
        outln!("{}", serde_json::to_string_pretty(&rows)?)?;
    } else {
        let table_rows: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                vec![
                    printable(&r.endpoint).into_owned(),
                    printable(&r.group).into_owned(),
                    printable(&r.package).into_owned(),
                    printable(&r.version).into_owned(),
                    printable(&r.architecture).into_owned(),
                    table::timestamp(&r.reported_at),
                ]
            })
            .collect();
        out!(
            "{}",
            table::render(
                &[
                    "ENDPOINT", "GROUP", "PACKAGE", "VERSION", "ARCH", "REPORTED"
                ],
                &table_rows
            )
        )?;
    }
    Ok(())
}
