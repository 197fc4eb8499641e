//! `weft identity link` on CSV files: clusters for every record, the links
//! explained, and bad input refused with one clear line.

use std::path::Path;

use crate::weft;

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn link(args: &[&str]) -> std::process::Output {
    weft()
        .args(["identity", "link"])
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn two_files_link_into_clusters_with_their_evidence() {
    let dir = tempfile::tempdir().unwrap();
    let mut crm = String::from("customer_ref,first_name,last_name,email,phone,dob\n");
    let mut orders = String::from("order_id,full_name,email,phone\n");
    for i in 0..300 {
        crm.push_str(&format!(
            "C{i},Name{},Surname{},person{i}@example.org,07700 9{i:05},19{:02}-{:02}-{:02}\n",
            i % 7,
            i % 11,
            50 + i % 50,
            1 + i % 12,
            1 + i % 28
        ));
    }
    // the same people ordering, written their own way; one stranger
    orders.push_str("O1,\"SURNAME3, NAME3\",Person3+shop@Example.org,+44 7700 900003\n");
    orders.push_str("O2,Name4 Surname4,person4@example.org,\n");
    orders.push_str("O3,Nobody Else,nobody@example.net,07700 123456\n");
    let crm = write(dir.path(), "crm.csv", &crm);
    let orders = write(dir.path(), "orders.csv", &orders);
    let out = dir.path().join("clusters.csv");
    let explain = dir.path().join("links.csv");
    let output = link(&[
        "--records",
        crm.to_str().unwrap(),
        "--records",
        orders.to_str().unwrap(),
        "--id-column",
        "customer_ref",
        "--id-column",
        "order_id",
        "--map",
        "first_name=first_name",
        "--map",
        "last_name=last_name",
        "--map",
        "full_name=full_name",
        "--map",
        "email=email",
        "--map",
        "phone=phone",
        "--map",
        "dob=dob",
        "--output",
        out.to_str().unwrap(),
        "--explain",
        explain.to_str().unwrap(),
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("linked 303 records from 2 source(s)"),
        "{stdout}"
    );

    let text = std::fs::read_to_string(&out).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("source,record_id,cluster_id,customer_id")
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 303);
    let cluster = |source: &str, id: &str| {
        rows.iter()
            .find(|r| r[0] == source && r[1] == id)
            .map(|r| r[2].to_owned())
            .unwrap()
    };
    assert_eq!(cluster("orders", "O1"), cluster("crm", "C3"));
    assert_eq!(cluster("orders", "O2"), cluster("crm", "C4"));
    assert_ne!(cluster("crm", "C3"), cluster("crm", "C4"));
    let o3 = cluster("orders", "O3");
    assert_eq!(
        rows.iter().filter(|r| r[2] == o3).count(),
        1,
        "the stranger stands alone"
    );

    let links = std::fs::read_to_string(&explain).unwrap();
    let header = links.lines().next().unwrap();
    assert!(header.starts_with("cluster_id,left,right,rule,match_probability,match_weight,refused,prior_weight,first_name"), "{header}");
    let o1 = links
        .lines()
        .find(|l| l.contains("orders:O1") && l.contains("crm:C3"))
        .expect("the link behind O1");
    assert!(o1.contains("email") || o1.contains("exact ("), "{o1}");
}

#[test]
fn a_person_map_keeps_customer_ids_across_runs() {
    let dir = tempfile::tempdir().unwrap();
    let crm = write(
        dir.path(),
        "crm.csv",
        "id,first_name,last_name,email,dob\n\
         C1,Ann,Smith,ann@example.com,1990-04-03\n\
         C2,Bob,Jones,bob@example.org,1985-11-30\n\
         C3,Cleo,Park,cleo@example.net,1979-02-01\n",
    );
    let map = dir.path().join("people.csv");
    let out = dir.path().join("clusters.csv");
    let run = |files: &[&Path]| {
        let mut args = vec![];
        for f in files {
            args.extend(["--records", f.to_str().unwrap()]);
        }
        args.extend([
            "--map",
            "first_name=first_name",
            "--map",
            "last_name=last_name",
            "--map",
            "email=email",
            "--map",
            "dob=dob",
            "--output",
            out.to_str().unwrap(),
            "--person-map",
            map.to_str().unwrap(),
        ]);
        let output = link(&args);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let ids: std::collections::HashMap<String, String> = std::fs::read_to_string(&map)
            .unwrap()
            .lines()
            .skip(1)
            .map(|l| {
                let f: Vec<&str> = l.split(',').collect();
                (format!("{}:{}", f[0], f[1]), f[2].to_owned())
            })
            .collect();
        (ids, String::from_utf8_lossy(&output.stdout).into_owned())
    };
    let (first, stdout) = run(&[&crm]);
    assert!(stdout.contains("0 kept"), "{stdout}");
    assert_eq!(
        first
            .values()
            .collect::<std::collections::HashSet<_>>()
            .len(),
        3
    );

    // Ann ordered; a new customer did too: Ann keeps her id, the newcomer gets one
    let orders = write(
        dir.path(),
        "orders.csv",
        "id,first_name,last_name,email\nO1,Ann,Smith,ann@example.com\nO2,Dee,Vale,dee@example.com\n",
    );
    let (second, stdout) = run(&[&crm, &orders]);
    assert!(
        stdout.contains("3 kept") && stdout.contains("1 new"),
        "{stdout}"
    );
    for key in ["crm:C1", "crm:C2", "crm:C3"] {
        assert_eq!(first[key], second[key], "{key} kept its id");
    }
    assert_eq!(second["orders:O1"], first["crm:C1"]);
    assert!(!first.values().any(|id| *id == second["orders:O2"]));
    let changes = std::fs::read_to_string(dir.path().join("people.changes.csv")).unwrap();
    let kinds: Vec<&str> = changes
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(1).unwrap())
        .collect();
    assert_eq!(kinds, ["new", "new", "new", "new"], "{changes}");
    let clusters = std::fs::read_to_string(&out).unwrap();
    assert!(
        clusters.contains(&format!(",{}", second["orders:O2"])),
        "{clusters}"
    );

    // a file that is not a person map is refused, and left as it was
    std::fs::write(&map, "a,b\n1,2\n").unwrap();
    let mut args = vec!["--records", crm.to_str().unwrap()];
    args.extend(["--map", "email=email", "--output", out.to_str().unwrap()]);
    args.extend(["--person-map", map.to_str().unwrap()]);
    let output = link(&args);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("not a person map"));
    assert_eq!(std::fs::read_to_string(&map).unwrap(), "a,b\n1,2\n");
}

#[test]
fn bad_input_is_refused_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let good = write(
        dir.path(),
        "a.csv",
        "id,email\n1,a@example.com\n2,b@example.com\n",
    );
    let ragged = write(
        dir.path(),
        "ragged.csv",
        "id,email\n1,a@example.com,extra\n",
    );
    let twice = write(
        dir.path(),
        "twice.csv",
        "id,email\n1,a@example.com\n1,b@example.com\n",
    );
    let out = dir.path().join("out.csv");
    let (good, ragged, twice, out) = (
        good.to_str().unwrap(),
        ragged.to_str().unwrap(),
        twice.to_str().unwrap(),
        out.to_str().unwrap(),
    );
    let cases: [(&[&str], &str); 6] = [
        (
            &["--records", good, "--map", "email=e-mail", "--output", out],
            "unknown identity field",
        ),
        (
            &["--records", good, "--map", "mail=email", "--output", out],
            "no file has: mail",
        ),
        (
            &["--records", good, "--map", "email", "--output", out],
            "is not COLUMN=FIELD",
        ),
        (
            &["--records", ragged, "--map", "email=email", "--output", out],
            "ragged.csv",
        ),
        (
            &["--records", twice, "--map", "email=email", "--output", out],
            "appears twice",
        ),
        (
            &[
                "--records",
                good,
                "--map",
                "email=email",
                "--output",
                out,
                "--threshold",
                "2",
            ],
            "--threshold",
        ),
    ];
    for (args, message) in cases {
        let output = link(args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    }
    let missing = link(&[
        "--records",
        "/nonexistent/x.csv",
        "--map",
        "email=email",
        "--output",
        out,
    ]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/x.csv"));
}
