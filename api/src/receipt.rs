//! A paid order's receipt as a PDF, drawn with `printpdf` (its built-in
//! Helvetica: no font files, no HTML layout).
//!
//! What it says: the seller, the buyer, the item, the amount with the tax
//! it includes (prices are tax-inclusive: the tax line shows the share of
//! the amount that is tax), the Midtrans transaction id and when it was
//! paid (UTC and Jakarta time).

use chrono::{DateTime, Utc};
use printpdf::{
    BuiltinFont, Mm, Op, PdfDocument, PdfFontHandle, PdfPage, PdfSaveOptions, Point, Pt, TextItem,
};

/// Who sells, as receipts name it.
#[derive(Clone, Debug)]
pub struct Seller {
    /// Its name.
    pub name: String,
    /// Its address or tax id line (may be empty).
    pub details: String,
    /// The tax included in prices, in percent (PPN: 11).
    pub tax_percent: u32,
}

impl Default for Seller {
    fn default() -> Self {
        Self {
            name: "wablast".to_owned(),
            details: String::new(),
            tax_percent: 11,
        }
    }
}

/// What one receipt says.
#[derive(Clone, Debug)]
pub struct Receipt {
    /// The order.
    pub order_id: String,
    /// The buyer's name (the tenant's).
    pub buyer_name: String,
    /// The buyer's email.
    pub buyer_email: String,
    /// The item, in words.
    pub item: String,
    /// Whole rupiah, tax included.
    pub amount: u64,
    /// Rupiah refunded so far.
    pub refunded: u64,
    /// Midtrans' transaction id.
    pub transaction_id: String,
    /// When it was paid.
    pub paid_at: DateTime<Utc>,
}

/// `Rp 1.500.000`.
fn rupiah(amount: u64) -> String {
    wablast_domain::order::Rupiah::new(amount).to_string()
}

/// The built-in fonts write Latin-1 only: anything else becomes `?`.
fn latin1(text: &str) -> String {
    text.chars()
        .map(|c| {
            if (c as u32) < 0x100 && !c.is_control() {
                c
            } else {
                '?'
            }
        })
        .collect()
}

/// The PDF of `receipt` sold by `seller`.
pub fn render(seller: &Seller, receipt: &Receipt) -> Vec<u8> {
    let tax_base = u128::from(receipt.amount) * 100 / (100 + u128::from(seller.tax_percent));
    let tax_base = u64::try_from(tax_base).unwrap_or(u64::MAX);
    let tax = receipt.amount.saturating_sub(tax_base);
    let jakarta = receipt.paid_at.with_timezone(&chrono_tz::Asia::Jakarta);
    let mut lines: Vec<(f32, String)> = vec![
        (20.0, "RECEIPT / KWITANSI".to_owned()),
        (11.0, String::new()),
        (11.0, format!("Seller: {}", seller.name)),
    ];
    if !seller.details.trim().is_empty() {
        lines.push((11.0, seller.details.clone()));
    }
    lines.extend([
        (11.0, String::new()),
        (11.0, format!("Buyer: {}", receipt.buyer_name)),
        (11.0, format!("Email: {}", receipt.buyer_email)),
        (11.0, String::new()),
        (11.0, format!("Order: {}", receipt.order_id)),
        (11.0, format!("Item: {}", receipt.item)),
        (11.0, format!("Subtotal (before tax): {}", rupiah(tax_base))),
        (
            11.0,
            format!(
                "Tax (PPN {}%, included): {}",
                seller.tax_percent,
                rupiah(tax)
            ),
        ),
        (13.0, format!("Amount paid: {}", rupiah(receipt.amount))),
    ]);
    if receipt.refunded > 0 {
        lines.push((11.0, format!("Refunded: {}", rupiah(receipt.refunded))));
    }
    lines.extend([
        (11.0, String::new()),
        (
            11.0,
            format!("Midtrans transaction id: {}", receipt.transaction_id),
        ),
        (
            11.0,
            format!(
                "Paid at: {} ({} WIB)",
                receipt.paid_at.format("%Y-%m-%d %H:%M:%S UTC"),
                jakarta.format("%Y-%m-%d %H:%M:%S")
            ),
        ),
    ]);
    let mut ops = vec![
        Op::StartTextSection,
        Op::SetTextCursor {
            pos: Point::new(Mm(20.0), Mm(270.0)),
        },
    ];
    for (size, text) in lines {
        ops.push(Op::SetFont {
            font: PdfFontHandle::Builtin(if size > 12.0 {
                BuiltinFont::HelveticaBold
            } else {
                BuiltinFont::Helvetica
            }),
            size: Pt(size),
        });
        ops.push(Op::SetLineHeight { lh: Pt(size * 1.6) });
        ops.push(Op::ShowText {
            items: vec![TextItem::Text(latin1(&text))],
        });
        ops.push(Op::AddLineBreak);
    }
    ops.push(Op::EndTextSection);
    let page = PdfPage::new(Mm(210.0), Mm(297.0), ops);
    PdfDocument::new(&format!("Receipt {}", receipt.order_id))
        .with_pages(vec![page])
        .save(&PdfSaveOptions::default(), &mut Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_receipt_is_a_pdf_naming_the_transaction() {
        let pdf = render(
            &Seller::default(),
            &Receipt {
                order_id: "0193a000-0000-7000-8000-0000000000aa".into(),
                buyer_name: "Toko Budi".into(),
                buyer_email: "budi@example.test".into(),
                item: "Plan Basic 30 (30 days, 2000 points)".into(),
                amount: 111_000,
                refunded: 0,
                transaction_id: "tx-123".into(),
                paid_at: "2026-12-07T03:00:00Z".parse().unwrap(),
            },
        );
        assert!(pdf.starts_with(b"%PDF-"), "not a PDF");
        assert!(pdf.len() > 500);
    }
}
