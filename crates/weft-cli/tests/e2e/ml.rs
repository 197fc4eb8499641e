//! `weft ml train` and `weft ml score` on CSV files: a model that learns a
//! known rule, scores written per row, and bad input refused with one line.

use std::path::Path;

use crate::weft;

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn run(args: &[&str], data_dir: &Path) -> std::process::Output {
    weft()
        .arg("ml")
        .args(args)
        .current_dir(data_dir)
        .env("WEFT_DATA_DIR", data_dir)
        .output()
        .unwrap()
}

/// Rows where `bought` follows visits and plan (and `noise` means nothing).
fn rows(n: usize) -> String {
    let mut csv = String::from("customer,visits,plan,noise,bought\n");
    for i in 0..n {
        let visits = (i * 7919) % 23;
        let plan = ["free", "basic", "pro"][(i * 31) % 3];
        let noise = (i * 104_729) % 1000;
        let bought = visits > 14 || (plan == "pro" && visits > 6);
        csv.push_str(&format!(
            "c{i},{visits},{plan},{noise},{}\n",
            u8::from(bought)
        ));
    }
    csv
}

#[test]
fn a_csv_model_learns_its_rule_and_scores_another_file() {
    let dir = tempfile::tempdir().unwrap();
    let train = write(dir.path(), "train.csv", &rows(3000));
    let model = dir.path().join("model");
    let output = run(
        &[
            "train",
            "--csv",
            train.to_str().unwrap(),
            "--label",
            "bought",
            "--id",
            "customer",
            "--out",
            model.to_str().unwrap(),
            "--time-budget",
            "5",
        ],
        dir.path(),
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("test ROC AUC"), "{stdout}");
    let card: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(model.join("card.json")).unwrap()).unwrap();
    let target = &card["targets"][0];
    let auc = target["test_evaluation"]["roc_auc"].as_f64().unwrap();
    assert!(auc > 0.99, "a rule of two columns is learnt: AUC {auc}");
    assert_eq!(
        target["train"]["rows"].as_u64().unwrap()
            + target["valid"]["rows"].as_u64().unwrap()
            + target["test"]["rows"].as_u64().unwrap(),
        3000
    );
    let importance = target["importance"].as_array().unwrap();
    assert_ne!(importance[0][0], "noise", "{importance:?}");
    assert!(
        std::fs::read_to_string(model.join("card.md"))
            .unwrap()
            .contains("| decile |")
    );

    // scoring: columns in another order, an unseen plan, the label absent
    let score_in = write(
        dir.path(),
        "new.csv",
        "noise,plan,customer,visits\n5,pro,a,20\n7,free,b,1\n9,enterprise,c,2\n",
    );
    let scores = dir.path().join("scores.csv");
    let output = run(
        &[
            "score",
            "--model",
            model.to_str().unwrap(),
            "--csv",
            score_in.to_str().unwrap(),
            "--id",
            "customer",
            "--out",
            scores.to_str().unwrap(),
        ],
        dir.path(),
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = std::fs::read_to_string(&scores).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "customer,score,decile,propensity");
    let score = |line: &str| line.split(',').nth(1).unwrap().parse::<f64>().unwrap();
    assert!(score(lines[1]) > 0.9 && score(lines[2]) < 0.1, "{text}");
    assert_eq!(lines.len(), 4);
}

#[test]
fn bad_files_are_refused_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("model");
    let out = out.to_str().unwrap();
    for (text, expected) in [
        ("a,b\n1,2\n", "no column \"bought\""),
        ("a,bought\n1,maybe\n", "not 0/1"),
        ("a,bought\n1,1\n2,1\n3,1\n4,1\n5,1\n6,1\n", "both outcomes"),
        ("a,bought\n1,1,9\n", "3 fields"),
    ] {
        let file = write(dir.path(), "bad.csv", text);
        let output = run(
            &[
                "train",
                "--csv",
                file.to_str().unwrap(),
                "--label",
                "bought",
                "--out",
                out,
            ],
            dir.path(),
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{text:?}: {stderr}");
        assert!(stderr.contains(expected), "{text:?}: {stderr}");
        assert!(!Path::new(out).join("model.json").exists());
    }
    // a model that needs a column the file lacks
    let train = write(dir.path(), "train.csv", &rows(500));
    let output = run(
        &[
            "train",
            "--csv",
            train.to_str().unwrap(),
            "--label",
            "bought",
            "--out",
            out,
            "--time-budget",
            "1",
        ],
        dir.path(),
    );
    assert!(output.status.success());
    let lacking = write(dir.path(), "lacking.csv", "visits,plan\n3,pro\n");
    let output = run(
        &[
            "score",
            "--model",
            out,
            "--csv",
            lacking.to_str().unwrap(),
            "--out",
            "/dev/null",
        ],
        dir.path(),
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("needs the column \"customer\"")
            || stderr.contains("needs the column \"noise\""),
        "{stderr}"
    );
    let output = run(
        &[
            "score",
            "--model",
            "nothing-here",
            "--csv",
            lacking.to_str().unwrap(),
            "--out",
            "/dev/null",
        ],
        dir.path(),
    );
    assert_eq!(output.status.code(), Some(2));
}
