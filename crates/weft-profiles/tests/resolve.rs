//! `resolve` over CSV sources in a real lake: customers, their profiles by
//! survivorship, ids that survive reruns, and history when a profile changes.

use std::path::Path;

use weft_core::config::{IdentityConfig, IdentitySourceConfig};
use weft_lake::Lake;
use weft_profiles::resolve;

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn source(name: &str, path: std::path::PathBuf, map: &[(&str, &str)]) -> IdentitySourceConfig {
    IdentitySourceConfig {
        name: name.to_owned(),
        path: Some(path),
        id_column: "id".to_owned(),
        map: map
            .iter()
            .map(|(c, f)| ((*c).to_owned(), (*f).to_owned()))
            .collect(),
        updated_at: Some("updated".to_owned()),
        consent: None,
        table: None,
    }
}

async fn rows(lake: &Lake, sql: &str) -> Vec<Vec<String>> {
    let batches = weft_lake::sql::query(lake, sql).await.unwrap();
    let mut csv = Vec::new();
    weft_lake::sql::write_csv(&batches, &mut csv).unwrap();
    String::from_utf8(csv)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(str::to_owned).collect())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn customers_keep_their_ids_and_profiles_keep_their_history() {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::new(&dir.path().join("data"));
    let crm = write(
        dir.path(),
        "crm.csv",
        "id,first,last,email,phone,dob,updated\n\
         C1,Ann,Smith,ann.smith@example.com,07911 123456,1990-04-03,2025-01-01\n\
         C2,Robert,Jones,bob@example.org,,1985-11-30,2025-01-02\n",
    );
    let newsletter = write(
        dir.path(),
        "newsletter.csv",
        "id,email,first,updated,consent\n\
         N1,Ann.Smith@Example.com,ANN,2025-06-01,yes\n",
    );
    let mut config = IdentityConfig::default();
    config.web.enabled = false;
    config.sources = vec![
        source(
            "crm",
            crm,
            &[
                ("first", "first_name"),
                ("last", "last_name"),
                ("email", "email"),
                ("phone", "phone"),
                ("dob", "dob"),
            ],
        ),
        IdentitySourceConfig {
            consent: Some("consent".to_owned()),
            ..source(
                "newsletter",
                newsletter,
                &[("email", "email"), ("first", "first_name")],
            )
        },
    ];

    let first = resolve(&lake, &config).await.unwrap();
    assert_eq!((first.run, first.records, first.customers), (1, 3, 2));
    assert_eq!((first.new, first.merged, first.kept), (2, 0, 0));
    let ann = rows(
        &lake,
        "SELECT customer_id, first_name, email, phone, array_to_string(sources, '|'), consent_marketing, emailable \
         FROM profiles.customers WHERE last_name = 'Smith'",
    )
    .await;
    assert_eq!(ann.len(), 1);
    let ann_id = ann[0][0].clone();
    // the CRM is trusted for names; the newsletter's sign-up is the latest email and the consent
    assert_eq!(
        ann[0][1..],
        [
            "Ann",
            "ann.smith@example.com",
            "+447911123456",
            "crm|newsletter",
            "true",
            "true"
        ]
    );
    let map = rows(
        &lake,
        "SELECT kind, value FROM identity.person_map WHERE customer_id IN \
         (SELECT customer_id FROM profiles.customers WHERE last_name = 'Smith') ORDER BY kind, value",
    )
    .await;
    assert!(
        map.contains(&vec!["phone".to_owned(), "+447911123456".to_owned()]),
        "{map:?}"
    );
    assert!(
        map.contains(&vec!["record".to_owned(), "N1".to_owned()]),
        "{map:?}"
    );

    // a new source arrives: Robert's order with a new phone; Ann is untouched
    let orders = write(
        dir.path(),
        "orders.csv",
        "id,name,email,phone,updated\nO1,Robert Jones,bob@example.org,+44 7427 199553,2025-07-01\n",
    );
    config.sources.push(source(
        "orders",
        orders,
        &[
            ("name", "full_name"),
            ("email", "email"),
            ("phone", "phone"),
        ],
    ));
    let second = resolve(&lake, &config).await.unwrap();
    assert_eq!((second.run, second.customers), (2, 2));
    assert_eq!(
        (second.new, second.merged, second.split, second.kept),
        (0, 0, 0, 2)
    );
    assert_eq!(second.profiles_changed, 1, "only Robert's profile changed");
    let versions = rows(
        &lake,
        "SELECT last_name, phone, is_current, valid_to IS NULL FROM profiles.customers ORDER BY last_name, valid_from",
    )
    .await;
    assert_eq!(
        versions,
        vec![
            vec!["Jones", "", "false", "false"],
            vec!["Jones", "+447427199553", "true", "true"],
            vec!["Smith", "+447911123456", "true", "true"],
        ]
    );
    let still_ann = rows(
        &lake,
        "SELECT customer_id FROM profiles.customers WHERE last_name = 'Smith'",
    )
    .await;
    assert_eq!(still_ann, vec![vec![ann_id]]);

    // nothing new: nothing versioned, no change recorded
    let third = resolve(&lake, &config).await.unwrap();
    assert_eq!((third.run, third.profiles_changed, third.new), (3, 0, 0));
    let changes = rows(
        &lake,
        "SELECT run, change FROM identity.customer_changes ORDER BY run, change",
    )
    .await;
    assert_eq!(changes, vec![vec!["1", "new"], vec!["1", "new"]]);
}

#[tokio::test]
async fn a_bad_source_is_one_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::new(dir.path());
    let mut config = IdentityConfig {
        sources: vec![source(
            "crm",
            write(dir.path(), "crm.csv", "id,mail\n1,a@b.com\n"),
            &[("email", "email")],
        )],
        ..IdentityConfig::default()
    };
    let error = resolve(&lake, &config).await.unwrap_err().to_string();
    assert!(
        error.contains("crm") && error.contains("map.email"),
        "{error}"
    );
    config.sources[0].table = Some("x.y".to_owned());
    let error = resolve(&lake, &config).await.unwrap_err().to_string();
    assert!(error.contains("identity.sources[0]"), "{error}");
    config.sources[0].table = None;
    config.sources[0].path = Some(dir.path().join("crm.xlsx"));
    let error = resolve(&lake, &config).await.unwrap_err().to_string();
    assert!(error.contains(".csv or .parquet"), "{error}");
}
