//! The enrichment chain on one core: simulated shop traffic made canonical
//! events once, then every default enrichment (user agent, campaign, referer,
//! IP anonymisation) applied to copies of them; next to parsing and validation
//! alone, and the whole way with enrichments, for scale. `cargo bench -p weft-enrich`.

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use weft_collect::CollectorPayload;
use weft_core::config::EnrichmentsConfig;
use weft_enrich::{Enrichments, Resolver, process_payload, process_payload_with};
use weft_sim::{Person, SimOptions};

/// As in the `weft` binary.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn traffic() -> (Vec<CollectorPayload>, Resolver) {
    let options = SimOptions::default();
    let payloads = (0..300)
        .flat_map(|index| Person::generate(&options, index).run.requests)
        .map(|request| request.into_payload("collector.example.com", "weft-bench"))
        .collect();
    let mut resolver = Resolver::new(Vec::new());
    for (uri, schema) in weft_sim::SCHEMAS {
        resolver = resolver.with_schema(uri, schema).unwrap();
    }
    (payloads, resolver)
}

fn enrichment_chain(c: &mut Criterion) {
    let (payloads, resolver) = traffic();
    let events: Vec<_> = payloads
        .iter()
        .flat_map(|payload| process_payload(payload, &resolver, 0).events)
        .collect();
    let enrichments = Enrichments::from_config(&EnrichmentsConfig::default()).unwrap();
    println!(
        "{} events from {} requests; enrichments: {:?}",
        events.len(),
        payloads.len(),
        enrichments.names()
    );
    let mut group = c.benchmark_group("enrich");
    group.throughput(Throughput::Elements(events.len() as u64));
    group.bench_function("chain_one_core", |b| {
        b.iter_batched(
            || events.clone(),
            |mut events| {
                for event in &mut events {
                    enrichments.apply(event).unwrap();
                }
                events
            },
            BatchSize::LargeInput,
        )
    });
    group.bench_function("parse_validate", |b| {
        b.iter(|| {
            payloads
                .iter()
                .map(|payload| process_payload(payload, &resolver, 0).events.len())
                .sum::<usize>()
        })
    });
    group.bench_function("parse_validate_enrich", |b| {
        b.iter(|| {
            payloads
                .iter()
                .map(|payload| {
                    process_payload_with(payload, &resolver, &enrichments, 0)
                        .events
                        .len()
                })
                .sum::<usize>()
        })
    });
    group.finish();
}

criterion_group!(benches, enrichment_chain);
criterion_main!(benches);
