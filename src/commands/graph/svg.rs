//! The flow chart as an SVG picture: a layered layout (each step one row below the
//! longest path that reaches it, rows ordered by their parents' places), boxes shaped
//! by kind, edges with their branch labels, `retry` loops drawn back up on the right,
//! and the runs waiting at each step as a badge when a daemon was asked.

use super::{Graph, Shape};
use std::collections::HashMap;
use std::fmt::Write as _;

const ROW: f64 = 96.0;
const GAP: f64 = 48.0;
const MARGIN: f64 = 32.0;
const CHAR: f64 = 7.2;
const FONT: &str = "font-family=\"Helvetica, Arial, sans-serif\"";

struct Placed {
    x: f64,
    y: f64,
    w: f64,
    h: f64,
}

pub(super) fn render(title: &str, g: &Graph, counts: &HashMap<String, i64>) -> String {
    let index: HashMap<&str, usize> = g
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.0.as_str(), i))
        .collect();
    let edges: Vec<(usize, usize, &str, bool)> = g
        .edges
        .iter()
        .filter_map(|(from, to, label, dashed)| {
            Some((
                *index.get(from.as_str())?,
                *index.get(to.as_str())?,
                label.as_str(),
                *dashed,
            ))
        })
        .collect();
    let node_ranks = ranks(g.nodes.len(), &edges);

    // An edge down more than one row passes through a narrow stand-in in each row
    // between, so it is routed beside the steps there instead of through them.
    let mut sizes: Vec<(f64, f64)> = g
        .nodes
        .iter()
        .map(|(_, text, shape)| {
            let text_w = text.chars().count() as f64 * CHAR;
            match shape {
                Shape::Decision => ((text_w + 64.0).max(96.0), 56.0),
                Shape::Terminal => ((text_w + 40.0).max(72.0), 40.0),
                Shape::Step | Shape::Wait => ((text_w + 28.0).max(110.0), 40.0),
            }
        })
        .collect();
    let mut vert_ranks = node_ranks.clone();
    let mut hops: Vec<(usize, usize, &str, bool)> = Vec::new();
    let mut chains: Vec<Vec<usize>> = Vec::new();
    for (from, to, label, dashed) in &edges {
        let mut chain = vec![*from];
        if !*dashed && node_ranks[*to] > node_ranks[*from] + 1 {
            for rank in node_ranks[*from] + 1..node_ranks[*to] {
                vert_ranks.push(rank);
                sizes.push((16.0, 0.0));
                chain.push(vert_ranks.len() - 1);
            }
        }
        chain.push(*to);
        for pair in chain.windows(2) {
            hops.push((pair[0], pair[1], label, *dashed));
        }
        chains.push(chain);
    }
    let rows = rows(&vert_ranks, &hops);

    let widths: Vec<f64> = rows
        .iter()
        .map(|row| {
            row.iter().map(|i| sizes[*i].0).sum::<f64>() + GAP * (row.len().max(1) - 1) as f64
        })
        .collect();
    let inner = widths.iter().copied().fold(0.0, f64::max);
    // Room on the right for loops drawn back up, and for badges.
    let loop_room = if edges
        .iter()
        .any(|(f, t, _, d)| *d || node_ranks[*t] <= node_ranks[*f])
    {
        96.0
    } else {
        24.0
    };
    let width = inner + 2.0 * MARGIN + loop_room;
    let height = rows.len() as f64 * ROW + MARGIN + 24.0;
    let mut placed: Vec<Placed> = sizes
        .iter()
        .map(|_| Placed {
            x: 0.0,
            y: 0.0,
            w: 0.0,
            h: 0.0,
        })
        .collect();
    for (r, row) in rows.iter().enumerate() {
        let mut x = MARGIN + (inner - widths[r]) / 2.0;
        for i in row {
            let (w, h) = sizes[*i];
            placed[*i] = Placed {
                x: x + w / 2.0,
                y: MARGIN + 36.0 + r as f64 * ROW + 20.0,
                w,
                h,
            };
            x += w + GAP;
        }
    }
    let placed = placed;

    let mut out = String::new();
    let _ = writeln!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{height:.0}\" \
         viewBox=\"0 0 {width:.0} {height:.0}\" role=\"img\" aria-label=\"journey {}\">",
        xml(title)
    );
    let _ = writeln!(out, "  <title>journey {}</title>", xml(title));
    out.push_str(
        "  <defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" markerWidth=\"8\" \
         markerHeight=\"8\" orient=\"auto-start-reverse\"><path d=\"M 0 0 L 10 5 L 0 10 z\" \
         fill=\"#475569\"/></marker></defs>\n",
    );
    let _ = writeln!(
        out,
        "  <rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\n  <text x=\"{MARGIN}\" y=\"{}\" {FONT} font-size=\"14\" \
         font-weight=\"bold\" fill=\"#0f172a\">journey {}</text>",
        MARGIN + 4.0,
        xml(title)
    );

    let right = MARGIN + inner;
    for (n, ((from, to, label, dashed), chain)) in edges.iter().zip(&chains).enumerate() {
        let style = if *dashed {
            " stroke-dasharray=\"6 4\""
        } else {
            ""
        };
        let (path, label_at) = if node_ranks[*to] > node_ranks[*from] && !*dashed {
            // Down the chart, row by row through the stand-ins.
            let first = &placed[chain[0]];
            let mut path = format!("M {:.1} {:.1}", first.x, first.y + first.h / 2.0);
            let mut label_at = (first.x, first.y);
            for (k, pair) in chain.windows(2).enumerate() {
                let (a, b) = (&placed[pair[0]], &placed[pair[1]]);
                let (x1, y1) = (a.x, a.y + a.h / 2.0);
                let (x2, y2) = (b.x, b.y - b.h / 2.0);
                let mid = (y1 + y2) / 2.0;
                if k > 0 {
                    let _ = write!(path, " L {x1:.1} {y1:.1}");
                }
                let _ = write!(
                    path,
                    " C {x1:.1} {mid:.1}, {x2:.1} {mid:.1}, {x2:.1} {y2:.1}"
                );
                if k == 0 {
                    label_at = ((x1 + x2) / 2.0, mid);
                }
            }
            (path, label_at)
        } else {
            // Back up the chart: out on the right, up, and in again.
            let (a, b) = (&placed[*from], &placed[*to]);
            let lane = right + 24.0 + (n % 3) as f64 * 16.0;
            let (x1, y1) = (a.x + a.w / 2.0, a.y);
            let (x2, y2) = (b.x + b.w / 2.0, b.y);
            (
                format!(
                    "M {x1:.1} {y1:.1} C {lane:.1} {y1:.1}, {lane:.1} {y2:.1}, {x2:.1} {y2:.1}"
                ),
                (lane - 8.0, (y1 + y2) / 2.0),
            )
        };
        let _ = writeln!(
            out,
            "  <path d=\"{path}\" fill=\"none\" stroke=\"#475569\" stroke-width=\"1.5\"{style} marker-end=\"url(#arrow)\"/>"
        );
        if !label.is_empty() {
            let w = label.chars().count() as f64 * 6.6 + 10.0;
            let _ = writeln!(
                out,
                "  <g class=\"edge-label\"><rect x=\"{:.1}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"18\" rx=\"4\" \
                 fill=\"#f8fafc\" stroke=\"#cbd5e1\"/><text x=\"{:.1}\" y=\"{:.1}\" {FONT} font-size=\"11\" \
                 text-anchor=\"middle\" fill=\"#334155\">{}</text></g>",
                label_at.0 - w / 2.0,
                label_at.1 - 9.0,
                label_at.0,
                label_at.1 + 4.0,
                xml(label)
            );
        }
    }

    for (i, (id, text, shape)) in g.nodes.iter().enumerate() {
        let p = &placed[i];
        let (left, top) = (p.x - p.w / 2.0, p.y - p.h / 2.0);
        let body = match shape {
            Shape::Step => format!(
                "<rect x=\"{left:.1}\" y=\"{top:.1}\" width=\"{:.1}\" height=\"{:.1}\" rx=\"3\" fill=\"#e0f2fe\" stroke=\"#0369a1\"/>",
                p.w, p.h
            ),
            Shape::Wait => format!(
                "<rect x=\"{left:.1}\" y=\"{top:.1}\" width=\"{:.1}\" height=\"{:.1}\" rx=\"20\" fill=\"#fef3c7\" stroke=\"#b45309\"/>",
                p.w, p.h
            ),
            Shape::Decision => format!(
                "<polygon points=\"{:.1},{:.1} {:.1},{:.1} {:.1},{:.1} {:.1},{:.1} {:.1},{:.1} {:.1},{:.1}\" fill=\"#ede9fe\" stroke=\"#6d28d9\"/>",
                left,
                p.y,
                left + 20.0,
                top,
                left + p.w - 20.0,
                top,
                left + p.w,
                p.y,
                left + p.w - 20.0,
                top + p.h,
                left + 20.0,
                top + p.h
            ),
            Shape::Terminal => format!(
                "<ellipse cx=\"{:.1}\" cy=\"{:.1}\" rx=\"{:.1}\" ry=\"{:.1}\" fill=\"#f1f5f9\" stroke=\"#334155\"/>",
                p.x,
                p.y,
                p.w / 2.0,
                p.h / 2.0
            ),
        };
        let _ = writeln!(
            out,
            "  <g class=\"node\" id=\"step-{}\">{body}<text x=\"{:.1}\" y=\"{:.1}\" {FONT} font-size=\"13\" text-anchor=\"middle\" fill=\"#0f172a\">{}</text></g>",
            xml(id),
            p.x,
            p.y + 4.5,
            xml(text)
        );
        if let Some(n) = counts.get(id).filter(|n| **n > 0) {
            let badge = format!("{n} waiting");
            let w = badge.chars().count() as f64 * 6.6 + 12.0;
            let _ = writeln!(
                out,
                "  <g class=\"count\"><rect x=\"{:.1}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"18\" rx=\"9\" fill=\"#dc2626\"/>\
                 <text x=\"{:.1}\" y=\"{:.1}\" {FONT} font-size=\"11\" text-anchor=\"middle\" fill=\"#ffffff\">{}</text></g>",
                left + p.w - w + 8.0,
                top - 12.0,
                left + p.w - w / 2.0 + 8.0,
                top + 1.0,
                xml(&badge)
            );
        }
    }
    out.push_str("</svg>\n");
    out
}

/// Each node's row: the longest path from the start over forward (solid) edges.
/// Bounded by the node count, so a cycle cannot spin.
fn ranks(nodes: usize, edges: &[(usize, usize, &str, bool)]) -> Vec<usize> {
    let mut rank = vec![0usize; nodes];
    for _ in 0..nodes {
        let mut changed = false;
        for (from, to, _, dashed) in edges {
            if !*dashed && rank[*to] < rank[*from] + 1 && rank[*from] + 1 < nodes.max(1) {
                rank[*to] = rank[*from] + 1;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    rank
}

/// Nodes by row, each row ordered by the mean place of its parents in the row above
/// (ties keep the plan's order).
fn rows(ranks: &[usize], edges: &[(usize, usize, &str, bool)]) -> Vec<Vec<usize>> {
    let depth = ranks.iter().copied().max().map_or(0, |m| m + 1);
    let mut rows: Vec<Vec<usize>> = vec![Vec::new(); depth];
    for (i, r) in ranks.iter().enumerate() {
        rows[*r].push(i);
    }
    let mut place: HashMap<usize, f64> = HashMap::new();
    for row in &mut rows {
        let key = |i: &usize| -> f64 {
            let parents: Vec<f64> = edges
                .iter()
                .filter(|(_, to, _, dashed)| to == i && !*dashed)
                .filter_map(|(from, ..)| place.get(from).copied())
                .collect();
            if parents.is_empty() {
                f64::MAX
            } else {
                parents.iter().sum::<f64>() / parents.len() as f64
            }
        };
        let mut keyed: Vec<(f64, usize, usize)> = row
            .iter()
            .enumerate()
            .map(|(n, i)| (key(i), n, *i))
            .collect();
        keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        *row = keyed.into_iter().map(|(_, _, i)| i).collect();
        let width = row.len() as f64;
        for (n, i) in row.iter().enumerate() {
            place.insert(*i, (n as f64 + 0.5) / width);
        }
    }
    rows
}

fn xml(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
