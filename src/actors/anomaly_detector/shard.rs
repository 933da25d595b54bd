//! How the detector splits a batch among the writers: by customer, so that no two writers ever
//! touch the same row.

use crate::messages::Persist;

/// Splits a batch among `writers` writers by customer: each customer's readings, anomalies,
/// alert episodes and detector state always go to the same writer, so they are stored in order
/// and no two writers ever touch the same row (no ordering guard, no lock waits between them).
/// Rejects go with the first part. Empty parts are left out; every part says how many there
/// are, so the batch counts as finished once each has been stored.
pub(super) fn shard(batch: Persist, writers: usize) -> Vec<(usize, Persist)> {
    if writers <= 1 {
        return vec![(0, batch)];
    }
    let Persist {
        id,
        readings,
        rejects,
        anomalies,
        alerts,
        events,
        states,
        positions,
        parts: _,
        fence,
        checkpoints,
    } = batch;
    let mut parts: Vec<Persist> = (0..writers)
        .map(|_| Persist {
            fence: fence.clone(),
            ..Persist::empty(id, positions.clone())
        })
        .collect();
    for r in readings {
        parts[writer_of(&r.reading.customer_id, writers)]
            .readings
            .push(r);
    }
    for a in anomalies {
        parts[writer_of(&a.customer_id, writers)].anomalies.push(a);
    }
    for a in alerts {
        parts[writer_of(&a.customer_id, writers)].alerts.push(a);
    }
    for e in events {
        parts[writer_of(&e.episode.customer_id, writers)]
            .events
            .push(e);
    }
    for s in states {
        parts[writer_of(&s.customer_id, writers)].states.push(s);
    }
    parts[0].rejects = rejects;
    // Always the first writer: only one ever updates `detector_checkpoints`, so two writers
    // never wait on each other's row locks there.
    parts[0].checkpoints = checkpoints;
    let mut out: Vec<(usize, Persist)> = parts
        .into_iter()
        .enumerate()
        .filter(|(_, p)| !p.is_empty())
        .collect();
    if out.is_empty() {
        out.push((
            0,
            Persist {
                fence,
                ..Persist::empty(id, positions)
            },
        ));
    }
    let n = out.len() as u32;
    for (_, p) in &mut out {
        p.parts = n;
    }
    out
}

/// The writer of `customer` among `writers` (stable within the process).
fn writer_of(customer: &str, writers: usize) -> usize {
    (crate::actors::spread(customer) % writers as u64) as usize
}
