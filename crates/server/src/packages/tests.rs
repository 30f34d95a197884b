//! The gateway's Package Manager pieces that need no agent: the signed
//! download route and version resolution. Uploads, assignments, agents
//! and inventories end to end: `crates/jumpgate/tests/e2e/packages.rs`.

use super::notify::{File, route_ok, sign_route};
use super::store::PackageRow;
use crate::keys::DataKey;

#[test]
fn download_links_are_bound_to_package_file_and_time() {
    let key = DataKey::for_tests(7);
    let now = 1_000_000;
    let url = sign_route(&key, "pkg_a", File::Deb, now + 60);
    let (path, query) = url.split_once('?').unwrap();
    assert_eq!(path, "/packages/pkg_a/deb");
    let sig = query.split("sig=").nth(1).unwrap();
    assert!(route_ok(&key, "pkg_a", File::Deb, now + 60, sig, now));
    // Another file, package, expiry or key: refused.
    assert!(!route_ok(&key, "pkg_a", File::Manifest, now + 60, sig, now));
    assert!(!route_ok(&key, "pkg_b", File::Deb, now + 60, sig, now));
    assert!(!route_ok(&key, "pkg_a", File::Deb, now + 61, sig, now));
    assert!(!route_ok(
        &DataKey::for_tests(8),
        "pkg_a",
        File::Deb,
        now + 60,
        sig,
        now
    ));
    // Expired; or made for far longer than the gateway signs.
    assert!(!route_ok(&key, "pkg_a", File::Deb, now + 60, sig, now + 61));
    let long = sign_route(&key, "pkg_a", File::Deb, now + 86_400);
    let sig = long.split("sig=").nth(1).unwrap();
    assert!(!route_ok(&key, "pkg_a", File::Deb, now + 86_400, sig, now));
    assert!(!route_ok(
        &key,
        "pkg_a",
        File::Deb,
        now + 60,
        "not base64!",
        now
    ));
}

#[test]
fn the_newest_upload_is_by_debian_order() {
    let row = |v: &str| PackageRow {
        id: format!("pkg_{v}"),
        name: "openssl".into(),
        version: v.into(),
        architecture: "amd64".into(),
        sha256: String::new(),
        size: 0,
        publisher: None,
        description: String::new(),
        depends: String::new(),
        blob_key: String::new(),
        manifest_key: String::new(),
        manifest_sha256: String::new(),
        key_id: String::new(),
        uploaded_by: String::new(),
        uploaded_at: 0,
    };
    let rows = [
        row("3.0.9-1"),
        row("3.0.11-1~deb12u1"),
        row("3.0.11~rc1"),
        row("3.0.10"),
    ];
    assert_eq!(super::newest(&rows).as_deref(), Some("3.0.11-1~deb12u1"));
    assert_eq!(super::newest(&[]), None);
}

/// Inventories on both engines: a full list replaces what was held; a
/// diff applies only on top of the revision it was made from.
#[tokio::test]
async fn inventories_apply_in_full_or_as_diffs_from_the_revision_held() {
    use jumpgate_proto::packages::{InstalledPackage, InventoryReport};

    use super::store;
    for (db, _lite) in crate::store::tests::engines("packages_inventory").await {
        let token =
            crate::agents::tests::token(&db, "lab", std::time::Duration::from_secs(600)).await;
        crate::agents::enroll(&db, &crate::agents::tests::request(&token, "pk-1", 1))
            .await
            .unwrap();
        let ep = crate::agents::find_by_name(&db, "pk-1")
            .await
            .unwrap()
            .unwrap();
        let id = ep.id.as_str();
        let p = |n: &str, v: &str| InstalledPackage {
            name: n.into(),
            version: v.into(),
            architecture: "amd64".into(),
        };
        let full = InventoryReport {
            revision: 3,
            full: true,
            packages: vec![p("openssl", "3.0.9-1"), p("curl", "7.88.1-10")],
            removed: vec![],
        };
        assert!(store::apply_inventory(&db, id, None, &full).await.unwrap());
        let diff = InventoryReport {
            revision: 5,
            full: false,
            packages: vec![p("openssl", "3.0.11-1~deb12u2")],
            removed: vec![("curl".into(), "amd64".into())],
        };
        // Made from a revision the gateway does not hold: not applied.
        assert!(
            !store::apply_inventory(&db, id, Some(4), &diff)
                .await
                .unwrap()
        );
        assert_eq!(store::inventory_revision(&db, id).await.unwrap(), Some(3));
        assert!(
            store::apply_inventory(&db, id, Some(3), &diff)
                .await
                .unwrap()
        );
        let rows = store::inventory(&db, None, Some("pk-1"), 100)
            .await
            .unwrap();
        let got: Vec<(&str, &str, &str)> = rows
            .iter()
            .map(|r| (r.1.as_str(), r.2.as_str(), r.3.as_str()))
            .collect();
        assert_eq!(got, [("lab", "openssl", "3.0.11-1~deb12u2")]);
        assert_eq!(store::inventory_revision(&db, id).await.unwrap(), Some(5));
        let by_name = store::inventory(&db, Some("openssl"), None, 100)
            .await
            .unwrap();
        assert_eq!(by_name.len(), 1);
        assert!(
            store::inventory(&db, Some("curl"), None, 100)
                .await
                .unwrap()
                .is_empty()
        );
    }
}
