//! Hand-made records with known answers: noise that must link, families and
//! conflicting identifiers that must not.

use weft_identity::{Field, LinkOptions, RawRecord, Refusal, link};

fn record(source: &str, id: &str, values: &[(Field, &str)]) -> RawRecord {
    RawRecord {
        source: source.to_owned(),
        id: id.to_owned(),
        values: values.iter().map(|(f, v)| (*f, (*v).to_owned())).collect(),
    }
}

/// Filler people so that the model has non-matches to learn from.
fn crowd(n: usize) -> Vec<RawRecord> {
    let first = [
        "Oliver", "Amelia", "Harry", "Isla", "Jack", "Freya", "Noah", "Grace",
    ];
    let last = [
        "Hughes", "Turner", "Ward", "Cooper", "Baker", "Scott", "Young", "Hill",
    ];
    (0..n)
        .map(|i| {
            record(
                "crowd",
                &format!("C{i}"),
                &[
                    (Field::FirstName, first[i % 8]),
                    (Field::LastName, last[(i / 8) % 8]),
                    (Field::Email, &format!("person{i}@example.org")),
                    (Field::Phone, &format!("07700 9{:05}", i)),
                    (
                        Field::Dob,
                        &format!("19{:02}-{:02}-{:02}", 50 + i % 50, 1 + i % 12, 1 + i % 28),
                    ),
                    (Field::Address, &format!("{} Station Road", 1 + i % 200)),
                    (Field::Postcode, &format!("AB{} {}CD", i % 90, i % 9)),
                ],
            )
        })
        .collect()
}

const MAPPED: [Field; 8] = [
    Field::FirstName,
    Field::LastName,
    Field::FullName,
    Field::Email,
    Field::Phone,
    Field::Dob,
    Field::Address,
    Field::Postcode,
];

fn cluster_of(linkage: &weft_identity::Linkage, source: &str, id: &str) -> u32 {
    linkage.clusters[linkage.find(Some(source), id).expect("a record") as usize]
}

#[test]
fn one_person_written_many_ways_is_one_cluster() {
    let mut records = crowd(400);
    records.extend([
        record(
            "crm",
            "1",
            &[
                (Field::FirstName, "Robert"),
                (Field::LastName, "Müller"),
                (Field::Email, "robert.muller@gmail.com"),
                (Field::Phone, "+44 7427 199553"),
                (Field::Dob, "1984-12-13"),
                (Field::Address, "Flat 3, 12 High Street"),
                (Field::Postcode, "NR3 0UT"),
            ],
        ),
        record(
            "orders",
            "A",
            &[
                (Field::FullName, "MULLER, BOB"),
                (Field::Email, "RobertMuller+shop@gmail.com"),
                (Field::Phone, "07427 199553"),
                (Field::Address, "Apt 3, 12 High St, Norwich"),
                (Field::Postcode, "nr30ut"),
            ],
        ),
        record(
            "support",
            "T",
            &[
                (Field::FullName, "Robret Muller"),
                (Field::Phone, "0044 7427 199553"),
                (Field::Dob, "13/12/1984"),
            ],
        ),
    ]);
    let linkage = link(&records, &MAPPED, &LinkOptions::default());
    let person = cluster_of(&linkage, "crm", "1");
    assert_eq!(cluster_of(&linkage, "orders", "A"), person);
    assert_eq!(cluster_of(&linkage, "support", "T"), person);
    // and nobody else joined them
    assert_eq!(linkage.clusters.iter().filter(|&&c| c == person).count(), 3);
    // the support ticket reaches the CRM record through links that say why
    let ticket = linkage.find(Some("support"), "T").unwrap();
    let paths = linkage.paths(ticket);
    assert_eq!(paths.len(), 2);
    for (_, chain) in &paths {
        assert!(!chain.is_empty());
        for &link in chain {
            let link = &linkage.links[link];
            assert!(link.refused.is_none() && link.probability >= 0.9);
            assert!(linkage.terms(link).iter().any(|t| t.weight > 0.0));
        }
    }
}

#[test]
fn a_family_email_does_not_fuse_two_people() {
    let mut records = crowd(400);
    let family = [
        ("1", "Anna", "1980-02-11", "07700 100200"),
        ("2", "John", "1978-07-30", "07700 300400"),
    ];
    for (id, first, dob, phone) in family {
        records.push(record(
            "crm",
            id,
            &[
                (Field::FirstName, first),
                (Field::LastName, "Smith"),
                (Field::Email, "thesmiths@gmail.com"),
                (Field::Phone, phone),
                (Field::Dob, dob),
                (Field::Address, "4 Elm Road"),
                (Field::Postcode, "LS8 3AI"),
            ],
        ));
    }
    // John's order, from the family address and email, without a birth date
    records.push(record(
        "orders",
        "O",
        &[
            (Field::FullName, "John Smith"),
            (Field::Email, "thesmiths@gmail.com"),
            (Field::Address, "4 Elm Rd"),
            (Field::Postcode, "LS83AI"),
        ],
    ));
    let linkage = link(&records, &MAPPED, &LinkOptions::default());
    assert_ne!(
        cluster_of(&linkage, "crm", "1"),
        cluster_of(&linkage, "crm", "2")
    );
    assert_eq!(
        cluster_of(&linkage, "orders", "O"),
        cluster_of(&linkage, "crm", "2")
    );
}

#[test]
fn conflicting_identifiers_block_a_merge() {
    let mut records = crowd(200);
    for (id, national_id) in [("1", "QQ123456C"), ("2", "AB987654D")] {
        records.push(record(
            "hr",
            id,
            &[
                (Field::FirstName, "Priya"),
                (Field::LastName, "Patel"),
                (Field::Email, "priya.patel@example.com"),
                (Field::NationalId, national_id),
            ],
        ));
    }
    let mut mapped = MAPPED.to_vec();
    mapped.push(Field::NationalId);
    let linkage = link(&records, &mapped, &LinkOptions::default());
    assert_ne!(
        cluster_of(&linkage, "hr", "1"),
        cluster_of(&linkage, "hr", "2")
    );
    let link = linkage
        .links
        .iter()
        .find(|l| {
            linkage.records[l.a as usize].source == linkage.records[l.b as usize].source
                && linkage.sources[linkage.records[l.a as usize].source as usize] == "hr"
        })
        .expect("the email + first name rule linked them");
    assert_eq!(link.refused, Some(Refusal::NationalIds));
    assert!(link.rule.is_some());
}

#[test]
fn no_records_and_one_record_link_to_nothing() {
    let linkage = link(&[], &MAPPED, &LinkOptions::default());
    assert!(linkage.clusters.is_empty());
    let one = [record("a", "1", &[(Field::Email, "x@example.com")])];
    let linkage = link(&one, &MAPPED, &LinkOptions::default());
    assert_eq!(linkage.clusters, vec![0]);
}
