//! Corpus family: fragments in and out of order, first or last missing,
//! duplicated, overlapping, tiny, of invalid length, atomic.
use crate::packet::Frag;

use crate::{
    corpus::{fam, Gen},
    corpus_ip::Kind,
};

/// How to cut a datagram: (fragment id, L4 length) -> the cut.
type Plan = Box<dyn Fn(u32, usize) -> Frag>;

pub fn add(g: &mut Gen, v6: bool) {
    let kinds = [
        Kind::Udp(80),
        Kind::Udp(8000),
        Kind::Udp(53),
        Kind::Udp(9999),
        Kind::Syn(22),
        Kind::Syn(8080),
        Kind::Echo,
    ];
    for kind in kinds {
        // 120 payload bytes: 128 (UDP, ICMP) or 140 (TCP) bytes of L4.
        let plans: Vec<(&str, Option<&'static str>, Plan)> = vec![
            (
                "2 fragments in order",
                None,
                Box::new(|id, n| Frag::split(id, n, 2, &[0, 1])),
            ),
            (
                "2 fragments reversed",
                Some("frag-order"),
                Box::new(|id, n| Frag::split(id, n, 2, &[1, 0])),
            ),
            (
                "3 fragments in order",
                None,
                Box::new(|id, n| Frag::split(id, n, 3, &[0, 1, 2])),
            ),
            (
                "3 fragments middle first",
                Some("frag-order"),
                Box::new(|id, n| Frag::split(id, n, 3, &[1, 0, 2])),
            ),
            (
                "3 fragments last first",
                Some("frag-order"),
                Box::new(|id, n| Frag::split(id, n, 3, &[2, 0, 1])),
            ),
            (
                "3 fragments reversed",
                Some("frag-order"),
                Box::new(|id, n| Frag::split(id, n, 3, &[2, 1, 0])),
            ),
            (
                "first fragment only",
                Some("frag-first"),
                Box::new(|id, n| Frag::split(id, n, 2, &[0])),
            ),
            (
                "last fragment only",
                None,
                Box::new(|id, n| Frag::split(id, n, 2, &[1])),
            ),
            (
                "first fragment twice",
                None,
                Box::new(|id, n| Frag::split(id, n, 2, &[0, 0, 1])),
            ),
            (
                "last fragment twice",
                None,
                Box::new(|id, n| Frag::split(id, n, 2, &[0, 1, 1])),
            ),
            (
                "overlapping fragments",
                Some("frag-first"),
                Box::new(|id, n| Frag::Pieces {
                    id,
                    ranges: vec![(0, 72), (64, n)],
                    more_on_last: false,
                }),
            ),
            (
                "8-byte first fragment",
                Some("frag-first"),
                Box::new(|id, n| Frag::Pieces {
                    id,
                    ranges: vec![(0, 8), (8, n)],
                    more_on_last: false,
                }),
            ),
            (
                "16-byte first fragment",
                Some("frag-first"),
                Box::new(|id, n| Frag::Pieces {
                    id,
                    ranges: vec![(0, 16), (16, n)],
                    more_on_last: false,
                }),
            ),
            (
                "last fragment with more-fragments set",
                Some("frag-first"),
                Box::new(|id, n| {
                    let half = (n / 2).next_multiple_of(8);
                    // The last piece a multiple of 8 bytes long, as a middle
                    // fragment must be: the datagram just never completes.
                    let end = half + (n - half) / 8 * 8;
                    Frag::Pieces {
                        id,
                        ranges: vec![(0, half), (half, end)],
                        more_on_last: true,
                    }
                }),
            ),
        ];
        for (what, tag, plan) in plans {
            let (src, port) = g.src(v6);
            let mut p = g.to_server(src, kind.l4(v6, port, 120));
            let n = p.l4_bytes().len();
            p.frag = plan(0x1000_0000 | port as u32, n);
            g.push_pkt(format!("{} {} in {what}", fam(v6), kind.name()), tag, &p);
        }
        // A middle fragment whose length is not a multiple of 8 (invalid).
        let (src, port) = g.src(v6);
        let mut p = g.to_server(src, kind.l4(v6, port, 120));
        let n = p.l4_bytes().len();
        p.frag = Frag::Pieces {
            id: 0x2000_0000 | port as u32,
            ranges: vec![(0, 64), (64, 100.min(n))],
            more_on_last: true,
        };
        g.push_pkt(
            format!(
                "{} {} in fragments, a middle one of odd length",
                fam(v6),
                kind.name()
            ),
            Some("frag-first"),
            &p,
        );
        if v6 {
            let (src, port) = g.src(v6);
            let mut p = g.to_server(src, kind.l4(v6, port, 16));
            p.frag = Frag::Atomic { id: port as u32 };
            g.push_pkt(
                format!("v6 {} as an atomic fragment", kind.name()),
                None,
                &p,
            );
        }
    }
}
