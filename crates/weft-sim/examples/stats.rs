fn main() {
    let visitors = std::env::args()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let options = weft_sim::SimOptions {
        visitors,
        ..Default::default()
    };
    let dir = std::env::temp_dir().join("weft-sim-stats");
    let _ = std::fs::remove_dir_all(&dir);
    let started = std::time::Instant::now();
    let (summary, bytes) = weft_sim::out::write_backfill(&options, &dir, 2, &|_| {}).unwrap();
    let elapsed = started.elapsed();
    println!("{}", serde_json::to_string_pretty(&summary).unwrap());
    println!(
        "{} events in {:.2?} = {:.0} events/s, raw {} bytes ({} per event)",
        summary.counts.events,
        elapsed,
        summary.counts.events as f64 / elapsed.as_secs_f64(),
        bytes,
        bytes / summary.counts.events.max(1)
    );
}
