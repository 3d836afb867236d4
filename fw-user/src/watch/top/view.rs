//! Draws a [`TopModel`] on a ratatui frame. Laid out for 80x24 (the
//! smallest terminal it is meant for); larger terminals give the tables and
//! sparklines more room.
//!
//! ```text
//!  fw top · eth1 · accepted 12/s · rejected 3.0/s                    q quits
//! ┌ reasons ───────────────────────────┐┌ top ports ──────────────────────────┐
//! │reason              pkts/s    total ││ports           pkts/s      new      │
//! │established            9.0     1234 ││tcp/22             3.0       56      │
//! │...                                 │└─────────────────────────────────────┘
//! │                                    │┌ top rejected sources ───────────────┐
//! │                                    ││source          events last          │
//! └────────────────────────────────────┘└─────────────────────────────────────┘
//! ┌ accepted/s ─────────────────────────┐┌ rejected/s ─────────────────────────┐
//! │▁▂▃▅▇                                ││▁▁▁▂                                 │
//! └─────────────────────────────────────┘└─────────────────────────────────────┘
//! ```
use ratatui::{
    layout::{Constraint, Layout, Rect},
    style::{Color, Modifier, Style, Stylize},
    text::{Line, Span},
    widgets::{Block, Cell, Row, Sparkline, Table},
    Frame,
};

use fw_common::Reason;

use super::model::{verdict, TopModel};
use crate::watch::stats::human;

/// Rows of the reasons table: every reason, a header and two borders.
const REASONS_HEIGHT: u16 = fw_common::REASON_COUNT as u16 + 3;
const SPARK_HEIGHT: u16 = 8;
const PORTS_HEIGHT: u16 = 7;
const REASONS_WIDTH: u16 = 38;

/// "0", "2.5", "140", "12K": rates keep a decimal while small.
pub fn rate(r: f64) -> String {
    if r <= 0.0 {
        "0".into()
    } else if r < 10.0 {
        format!("{r:.1}")
    } else {
        human(r.round() as u64)
    }
}

fn verdict_style(verdict: &str) -> Style {
    match verdict {
        "accept" => Style::new().fg(Color::Green),
        "answer" => Style::new().fg(Color::Yellow),
        "pass*" => Style::new().fg(Color::Cyan),
        _ => Style::new().fg(Color::Red),
    }
}

/// The smallest screen the layout fits (columns, rows).
pub const MIN_SIZE: (u16, u16) = (80, 24);

pub fn draw(frame: &mut Frame, m: &TopModel) {
    let area = frame.area();
    if area.width < MIN_SIZE.0 || area.height < MIN_SIZE.1 {
        // A mangled table tells less than saying why there is none.
        let text = format!(
            "fw top needs a terminal of at least {}x{} (this one is {}x{}): enlarge it, or q quits",
            MIN_SIZE.0, MIN_SIZE.1, area.width, area.height
        );
        frame.render_widget(
            ratatui::widgets::Paragraph::new(text).wrap(ratatui::widgets::Wrap { trim: true }),
            area,
        );
        return;
    }
    let [head, middle, bottom] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(REASONS_HEIGHT),
        Constraint::Length(SPARK_HEIGHT),
    ])
    .areas(frame.area());
    draw_header(frame, head, m);
    let [left, right] =
        Layout::horizontal([Constraint::Length(REASONS_WIDTH), Constraint::Fill(1)]).areas(middle);
    draw_reasons(frame, left, m);
    let [ports, sources] =
        Layout::vertical([Constraint::Length(PORTS_HEIGHT), Constraint::Fill(1)]).areas(right);
    draw_ports(frame, ports, m);
    draw_sources(frame, sources, m);
    let [acc, rej] =
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(bottom);
    draw_spark(frame, acc, "accepted/s", &m.accepted, Color::Green);
    draw_spark(frame, rej, "rejected/s", &m.rejected, Color::Red);
}

fn draw_header(frame: &mut Frame, area: Rect, m: &TopModel) {
    let ifaces = if m.interfaces.is_empty() {
        "no interface".to_string()
    } else {
        m.interfaces.join(",")
    };
    let left = match &m.notice {
        // News about fw itself (unloaded, loaded again) comes first.
        Some(n) => Line::from(vec![
            Span::from(" fw top").bold(),
            Span::from(" · "),
            Span::from(n.as_str()).yellow(),
        ]),
        None => Line::from(vec![
            Span::from(" fw top").bold(),
            Span::from(format!(" · {ifaces} · ")),
            Span::from(format!("accepted {}/s", rate(m.accepted_per_sec))).green(),
            Span::from(" · "),
            Span::from(format!("rejected {}/s", rate(m.rejected_per_sec))).red(),
        ]),
    };
    frame.render_widget(left, area);
    frame.render_widget(Line::from("q quits ").right_aligned().dim(), area);
}

fn header_row<'a>(cells: impl IntoIterator<Item = &'a str>) -> Row<'a> {
    Row::new(cells).style(Style::new().add_modifier(Modifier::BOLD))
}

fn draw_reasons(frame: &mut Frame, area: Rect, m: &TopModel) {
    let rows = m.reasons.iter().map(|r| {
        Row::new(vec![
            Cell::from(r.reason).style(verdict_style(r.verdict)),
            Cell::from(Line::from(rate(r.per_sec)).right_aligned()),
            Cell::from(Line::from(human(r.total)).right_aligned()),
        ])
    });
    let table = Table::new(
        rows,
        [
            Constraint::Length(18),
            Constraint::Length(7),
            Constraint::Length(8),
        ],
    )
    .header(header_row(["reason", " pkts/s", "   total"]))
    .block(Block::bordered().title(" reasons "));
    frame.render_widget(table, area);
}

fn draw_ports(frame: &mut Frame, area: Rect, m: &TopModel) {
    let rows = m.ports.iter().map(|p| {
        Row::new(vec![
            Cell::from(format!(
                "{}/{}",
                p.proto.name(),
                p.proto.range_text(p.range)
            )),
            Cell::from(Line::from(rate(p.per_sec)).right_aligned()),
            Cell::from(Line::from(human(p.total)).right_aligned()),
        ])
    });
    let table = Table::new(
        rows,
        [
            // "tcp/10000-20000": a whole range of the policy is one row.
            Constraint::Length(15),
            Constraint::Length(7),
            Constraint::Length(8),
        ],
    )
    .header(header_row(["ports", " pkts/s", "     new"]))
    .block(Block::bordered().title(" top ports "));
    frame.render_widget(table, area);
}

fn draw_sources(frame: &mut Frame, area: Rect, m: &TopModel) {
    let n = area.height.saturating_sub(3) as usize;
    let rows = m.top_sources(n).into_iter().map(|s| {
        // The target is colored by what fw did with it (answered or dropped).
        let style = Reason::ALL
            .iter()
            .find(|r| r.name() == s.last_reason)
            .map_or(Style::new(), |&r| verdict_style(verdict(r)));
        Row::new(vec![
            Cell::from(s.addr.to_string()),
            Cell::from(Line::from(human(s.events)).right_aligned()),
            Cell::from(s.last).style(style),
        ])
    });
    let table = Table::new(
        rows,
        [
            Constraint::Fill(1),
            Constraint::Length(6),
            Constraint::Length(16),
        ],
    )
    .header(header_row(["source", "events", "last"]))
    .block(Block::bordered().title(" top rejected sources "));
    frame.render_widget(table, area);
}

fn draw_spark(
    frame: &mut Frame,
    area: Rect,
    title: &str,
    data: &std::collections::VecDeque<u64>,
    color: Color,
) {
    // The newest samples that fit; older ones scroll off the left.
    let width = area.width.saturating_sub(2) as usize;
    let skip = data.len().saturating_sub(width);
    let shown: Vec<u64> = data.iter().skip(skip).copied().collect();
    let max = shown.iter().copied().max().unwrap_or(0);
    let block = Block::bordered().title(format!(" {title} · max {} ", human(max)));
    let spark = Sparkline::default()
        .block(block)
        .data(&shown)
        .style(Style::new().fg(color));
    frame.render_widget(spark, area);
}
