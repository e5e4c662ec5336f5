//! FUOTA encoding benchmark (not a test): fragments a 1 MiB image with 50 %
//! redundancy (TS004 v1, 239-byte fragments, as EU868 DR5 allows) and prints the
//! time per run, and the plan of the spec's 1 MiB example.
//!
//! cargo run --release --bin fuota-encode

use std::time::{Duration, Instant};

use stationkeeper::fuota::codec::{fragment, nb_frag, redundancy_for_percent};
use stationkeeper::fuota::plan::{plan, Request};

fn main() {
    let image: Vec<u8> = (0..1_048_576u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let frag_size = 239;
    let r = redundancy_for_percent(nb_frag(image.len(), frag_size), 50);
    let mut times = vec![];
    for _ in 0..7 {
        let t = Instant::now();
        let frags = fragment(&image, frag_size, r);
        times.push(t.elapsed());
        assert_eq!(frags.len(), nb_frag(image.len(), frag_size) + r);
    }
    times.sort();
    println!(
        "encode 1 MiB, FragSize {frag_size}, R = {r} (50 %): min {:.1} ms, median {:.1} ms, max {:.1} ms over {} runs",
        ms(times[0]),
        ms(times[times.len() / 2]),
        ms(times[times.len() - 1]),
        times.len()
    );
    let p = plan(&Request {
        image_len: 1_048_576,
        frag_size: 239,
        redundancy_percent: 10,
        region: "EU868".into(),
        dr: 5,
        freq: 869_525_000,
        interval: Duration::ZERO,
    })
    .expect("the spec example plans");
    let hand = 19_038.8;
    println!(
        "plan of the 1 MiB example: {} frames, ToA {:.3} ms, spacing {:.3} s, wall {:.1} s vs {hand} s by hand ({:+.3} %), TimeOut {:?}",
        p.frags.total(),
        ms(p.time_on_air),
        p.frame_spacing.as_secs_f64(),
        p.min_wall_time.as_secs_f64(),
        (p.min_wall_time.as_secs_f64() - hand) / hand * 100.0,
        p.class_c_timeout
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
