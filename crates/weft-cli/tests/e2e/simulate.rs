//! `weft simulate` from the command line: a backfill the loader ingests, the
//! same traffic over HTTP to a running weft, reproducible bytes, and clear
//! errors for bad arguments.

use std::collections::HashSet;
use std::path::Path;

use crate::{Server, sql, weft};

fn simulate(args: &[&str], out: &Path) -> String {
    let output = weft()
        .arg("simulate")
        .args(args)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// The number after `label` on the line that starts with it.
fn figure(stdout: &str, line: &str, after: &str) -> u64 {
    let line = stdout
        .lines()
        .find(|l| l.trim_start().starts_with(line))
        .unwrap_or_else(|| panic!("no {line} line: {stdout}"));
    line.split(after)
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

fn truth_ids(dir: &Path, kind: &str) -> HashSet<String> {
    let text = std::fs::read_to_string(dir.join("truth/identifiers.csv")).unwrap();
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let mut parts = line.split(',');
            (parts.next() == Some(kind)).then(|| parts.next().unwrap().to_owned())
        })
        .collect()
}

/// `weft run load`, with a config file when given.
fn run_load(data: &Path, config: Option<&Path>) -> std::process::Output {
    let mut command = weft();
    command.args(["run", "load", "--data-dir"]).arg(data);
    if let Some(config) = config {
        command.arg("--config").arg(config);
    }
    command.output().unwrap()
}

fn column(dir: &Path, query: &str) -> Vec<String> {
    sql(dir, query, "csv")
        .lines()
        .skip(1)
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_backfill_loads_whole_and_is_reproducible() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let args = ["--visitors", "120", "--seed", "7", "--end", "2026-10-01"];
    let stdout = simulate(&args, a.path());
    simulate(&args, b.path());
    let events: u64 = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("people"))
        .and_then(|l| l.split("), ").nth(1))
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .parse()
        .unwrap();
    assert!(events > 1_000, "{stdout}");
    for file in [
        "truth/people.csv",
        "truth/records.csv",
        "records/orders.csv",
        "raw/00000000000000000000.log",
    ] {
        assert_eq!(
            std::fs::read(a.path().join(file)).unwrap(),
            std::fs::read(b.path().join(file)).unwrap(),
            "{file} differs for the same seed"
        );
    }

    let output = run_load(a.path(), None);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        column(a.path(), "SELECT count(*) FROM atomic.events"),
        [events.to_string()]
    );
    assert_eq!(
        column(a.path(), "SELECT count(*) FROM atomic.bad_rows"),
        ["0"]
    );
    // historical collector times: the backfill lands in the simulated period
    let days = column(
        a.path(),
        "SELECT DISTINCT CAST(collector_tstamp AS DATE) FROM atomic.events ORDER BY 1",
    );
    assert!(
        days.len() > 30 && days.last().unwrap().as_str() <= "2026-10-01",
        "{days:?}"
    );
    // enriched on the way in: campaigns and referers classified, addresses masked
    let mediums = column(
        a.path(),
        "SELECT DISTINCT mkt_medium FROM atomic.events WHERE mkt_medium IS NOT NULL ORDER BY 1",
    );
    assert_eq!(mediums, ["cpc", "email", "paid_social"]);
    let referers = column(
        a.path(),
        "SELECT DISTINCT refr_medium FROM atomic.events WHERE refr_medium IS NOT NULL ORDER BY 1",
    );
    for medium in ["internal", "search", "unknown"] {
        assert!(referers.contains(&medium.to_owned()), "{referers:?}");
    }
    let unmasked = column(
        a.path(),
        "SELECT count(*) FROM atomic.events WHERE user_ipaddress NOT LIKE '%.x' AND user_ipaddress NOT LIKE '%:x'",
    );
    assert_eq!(unmasked, ["0"]);
    // every cookie in the lake is in the truth
    let cookies = truth_ids(a.path(), "domain_userid");
    for duid in column(a.path(), "SELECT DISTINCT domain_userid FROM atomic.events") {
        assert!(cookies.contains(&duid), "{duid} not in the truth");
    }
}

#[test]
fn traffic_sent_to_a_running_weft_arrives_with_client_addresses() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(
        data.path(),
        &[
            ("WEFT_COLLECTOR__TRUSTED_PROXIES", "[\"127.0.0.1/32\"]"),
            ("WEFT_LOADER__INTERVAL_SECS", "3600"),
        ],
    );
    let url = format!("http://{}", server.addr);
    let stdout = simulate(
        &[
            "--collector",
            &url,
            "--visitors",
            "60",
            "--concurrency",
            "4",
        ],
        data.path(),
    );
    let sent = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("sent"))
        .unwrap();
    let requests: u64 = sent.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(
        sent.contains(&format!("{requests} accepted, 0 retried, 0 failed")),
        "{stdout}"
    );
    let events = figure(&stdout, "sent", "carrying ");
    drop(server);

    let output = run_load(data.path(), None);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        column(data.path(), "SELECT count(*) FROM atomic.events"),
        [events.to_string()]
    );
    assert_eq!(
        column(data.path(), "SELECT count(*) FROM atomic.bad_rows"),
        ["0"]
    );
    // the forwarded client addresses, not the loopback the requests came from
    let addresses = column(
        data.path(),
        "SELECT DISTINCT user_ipaddress FROM atomic.events",
    );
    assert!(
        addresses.len() > 20 && !addresses.iter().any(|a| a.starts_with("127.")),
        "{addresses:?}"
    );
    // the collector cookie the simulated browsers hold is the network user id
    // (records, truth and the shop's schemas went to the data directory, beside the lake)
    let nuids = truth_ids(data.path(), "network_userid");
    for nuid in column(
        data.path(),
        "SELECT DISTINCT network_userid FROM atomic.events",
    ) {
        assert!(nuids.contains(&nuid), "{nuid}");
    }
}

#[test]
fn bad_arguments_are_refused_clearly() {
    let out = tempfile::tempdir().unwrap();
    for (args, expected) in [
        (vec!["--visitors", "0"], "visitors"),
        (vec!["--end", "yesterday"], "YYYY-MM-DD"),
        (
            vec!["--days", "10", "--prediction-days", "10"],
            "prediction days",
        ),
        (vec!["--site", "shop.example.com"], "origin"),
        (vec!["--collector", "ftp://example.com"], "http://"),
    ] {
        let output = weft()
            .arg("simulate")
            .args(&args)
            .arg("--out")
            .arg(out.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    // nothing listening: one clear error, not minutes of retries
    let output = weft()
        .args([
            "simulate",
            "--collector",
            "http://127.0.0.1:9",
            "--visitors",
            "5",
            "--out",
        ])
        .arg(out.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot reach the collector"));
}

#[test]
fn a_bad_enrichment_setting_stops_the_start_with_its_key() {
    let data = tempfile::tempdir().unwrap();
    for (command, key, value) in [
        (
            vec!["run", "load"],
            "WEFT_ENRICHMENTS__IP_ANONYMISATION__IPV4_OCTETS",
            "9",
        ),
        (
            vec!["serve", "--addr", "127.0.0.1:0"],
            "WEFT_ENRICHMENTS__IP_ANONYMISATION__IPV6_SEGMENTS",
            "0",
        ),
    ] {
        let output = weft()
            .args(&command)
            .arg("--data-dir")
            .arg(data.path())
            .env(key, value)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{command:?}: {stderr}");
        assert!(stderr.contains("enrichments.ip_anonymisation."), "{stderr}");
    }
    let output = weft()
        .args(["run", "load", "--data-dir"])
        .arg(data.path())
        .env("WEFT_ENRICHMENTS__GEO__ENABLED", "true")
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(2),
        "an unknown enrichment is refused"
    );
}

#[test]
fn a_lookup_from_weft_toml_lands_as_a_context_column() {
    let data = tempfile::tempdir().unwrap();
    simulate(&["--visitors", "40", "--end", "2026-10-01"], data.path());
    let catalogue = data.path().join("catalogue.csv");
    std::fs::write(&catalogue, "sku,brand\nSKU-001,Acme Bakery\nSKU-101,Fizz & Co\nSKU-201,Dairy Ltd\nSKU-301,Green Farm\nSKU-401,Crunch\nSKU-501,Sparkle\nSKU-601,Glow\n").unwrap();
    let config = data.path().join("weft.toml");
    std::fs::write(
        &config,
        format!(
            "[[enrichments.lookups]]\nname = \"catalogue\"\ncsv = \"{}\"\nkey_column = \"sku\"\nschema = \"iglu:com.acme/catalogue_entry/jsonschema/1-0-0\"\njson = {{ field = \"contexts\", schema = \"iglu:com.acme/product_entity/jsonschema/1-*-*\", path = \"$.sku\" }}\n",
            catalogue.display()
        ),
    )
    .unwrap();
    let output = run_load(data.path(), Some(&config));
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let joined = column(
        data.path(),
        "SELECT json_get_str(contexts_com_acme_catalogue_entry_1, 0, 'brand') AS brand, count(*) FROM atomic.events \
         WHERE json_get_str(contexts_com_acme_product_entity_1, 0, 'sku') = 'SKU-001' GROUP BY 1",
    );
    assert_eq!(joined.len(), 1, "{joined:?}");
    assert!(joined[0].starts_with("Acme Bakery,"), "{joined:?}");
}

#[test]
fn a_lookup_reads_a_table_another_engine_wrote_into_the_lake() {
    let data = tempfile::tempdir().unwrap();
    simulate(&["--visitors", "30", "--end", "2026-10-01"], data.path());
    // a reference table written by Python deltalake, as a data team would
    let table = data.path().join("lake/reference/catalogue");
    let script = format!(
        "import pyarrow as pa\nfrom deltalake import write_deltalake\nwrite_deltalake('{}', pa.table({{'sku': ['SKU-001', 'SKU-101'], 'brand': ['Acme Bakery', 'Fizz & Co'], 'launch_year': [2019, 2023]}}))\n",
        table.display()
    );
    let python = std::process::Command::new("python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(
        python.status.success(),
        "pip install deltalake: {}",
        String::from_utf8_lossy(&python.stderr)
    );
    let config = data.path().join("weft.toml");
    std::fs::write(
        &config,
        "[[enrichments.lookups]]\nname = \"catalogue\"\ntable = \"reference.catalogue\"\nkey_column = \"sku\"\nschema = \"iglu:com.acme/catalogue_entry/jsonschema/1-0-0\"\njson = { field = \"contexts\", schema = \"iglu:com.acme/product_entity/jsonschema/1-*-*\", path = \"$.sku\" }\n",
    )
    .unwrap();
    let output = run_load(data.path(), Some(&config));
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let joined = column(
        data.path(),
        "SELECT DISTINCT json_get_str(contexts_com_acme_catalogue_entry_1, 0, 'brand') || ' ' || \
         CAST(json_get_int(contexts_com_acme_catalogue_entry_1, 0, 'launch_year') AS VARCHAR) FROM atomic.events \
         WHERE json_get_str(contexts_com_acme_product_entity_1, 0, 'sku') = 'SKU-101'",
    );
    assert_eq!(joined, ["Fizz & Co 2023"]);

    // a table that is not there: a clear start-up error
    std::fs::write(&config, "[[enrichments.lookups]]\nname = \"x\"\ntable = \"reference.missing\"\nkey_column = \"sku\"\nschema = \"iglu:com.acme/x/jsonschema/1-0-0\"\natomic = \"ti_sku\"\n").unwrap();
    let output = run_load(data.path(), Some(&config));
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("enrichments.lookups[0].table"));
}
