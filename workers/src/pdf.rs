//! Invoice PDFs, written with a PDF library (pdf-writer) using the standard Helvetica
//! font, so text extraction (the tests read it with `lopdf`) finds every figure: who issued
//! it (name, address, tax id), the number, human dates (issued, paid), the buyer, the
//! lines, the subtotal before tax, the tax at its rate (zero shown as such), the total and
//! the payment's reference.

use domain::invoice::Seller;
use domain::money::Money;
use pdf_writer::{Content, Finish, Name, Pdf, Rect, Ref, Str};
use projections::billing::InvoiceRow;

/// Encodes text for a WinAnsi font: Latin-1 characters as they are, others as `?`.
fn win_ansi(text: &str) -> Vec<u8> {
    text.chars()
        .map(|c| if (c as u32) < 256 { c as u8 } else { b'?' })
        .collect()
}

/// Where text goes on the page, top down.
struct Page {
    content: Content,
    regular: Name<'static>,
    bold: Name<'static>,
}

impl Page {
    fn text(&mut self, text: &str, x: f32, y: f32, size: f32, heavy: bool) {
        self.content.begin_text();
        self.content
            .set_font(if heavy { self.bold } else { self.regular }, size);
        self.content.next_line(x, y);
        self.content.show(Str(&win_ansi(text)));
        self.content.end_text();
    }
}

/// The seller of an invoice issued before sellers were recorded.
fn unnamed_seller() -> Seller {
    Seller {
        name: String::new(),
        address: Vec::new(),
        tax_id: None,
        tax_rate_basis_points: 0,
    }
}

/// A one-page A4 invoice.
pub fn invoice(invoice: &InvoiceRow, bill_to: &str) -> Vec<u8> {
    let (catalog, pages, page_ref, font, bold, contents) = (
        Ref::new(1),
        Ref::new(2),
        Ref::new(3),
        Ref::new(4),
        Ref::new(5),
        Ref::new(6),
    );
    let mut pdf = Pdf::new();
    pdf.catalog(catalog).pages(pages);
    pdf.pages(pages).kids([page_ref]).count(1);
    let mut p = pdf.page(page_ref);
    p.media_box(Rect::new(0.0, 0.0, 595.0, 842.0));
    p.parent(pages);
    p.contents(contents);
    let mut resources = p.resources();
    resources
        .fonts()
        .pair(Name(b"F1"), font)
        .pair(Name(b"F2"), bold);
    resources.finish();
    p.finish();
    pdf.type1_font(font)
        .base_font(Name(b"Helvetica"))
        .encoding_predefined(Name(b"WinAnsiEncoding"));
    pdf.type1_font(bold)
        .base_font(Name(b"Helvetica-Bold"))
        .encoding_predefined(Name(b"WinAnsiEncoding"));

    let money = |amount: i64| Money::new(amount, &invoice.currency).display();
    let seller = invoice.seller.clone().unwrap_or_else(unnamed_seller);
    let mut page = Page {
        content: Content::new(),
        regular: Name(b"F1"),
        bold: Name(b"F2"),
    };

    // The seller, top right.
    let mut y = 780.0;
    if !seller.name.is_empty() {
        page.text(&seller.name, 340.0, y, 11.0, true);
        y -= 14.0;
    }
    for line in &seller.address {
        page.text(line, 340.0, y, 10.0, false);
        y -= 13.0;
    }
    if let Some(tax_id) = &seller.tax_id {
        page.text(&format!("Tax ID: {tax_id}"), 340.0, y, 10.0, false);
    }

    // The invoice, top left.
    page.text("Invoice", 56.0, 780.0, 22.0, true);
    let details = [
        format!("Invoice number: {}", invoice.number),
        format!("Issued: {}", invoice.issued_at.human_date()),
        match invoice.paid_at {
            Some(paid) => format!("Paid: {}", paid.human_date()),
            None => "Status: open (not paid yet)".to_owned(),
        },
    ];
    let mut y = 740.0;
    for detail in &details {
        page.text(detail, 56.0, y, 11.0, false);
        y -= 15.0;
    }
    if let Some(reference) = &invoice.provider_reference {
        page.text(
            &format!("Payment reference: {reference}"),
            56.0,
            y,
            11.0,
            false,
        );
        y -= 15.0;
    }
    page.text(&format!("Bill to: {bill_to}"), 56.0, y - 10.0, 11.0, false);

    // The lines.
    let mut y = 620.0;
    page.text("Description", 56.0, y, 11.0, true);
    page.text("Qty", 360.0, y, 11.0, true);
    page.text("Unit price", 400.0, y, 11.0, true);
    page.text("Amount", 490.0, y, 11.0, true);
    y -= 20.0;
    for item in &invoice.lines {
        page.text(&item.description, 56.0, y, 10.0, false);
        page.text(&item.quantity.to_string(), 360.0, y, 10.0, false);
        page.text(&money(item.unit_amount), 400.0, y, 10.0, false);
        page.text(&money(item.amount), 490.0, y, 10.0, false);
        y -= 16.0;
    }

    // The totals: prices include the tax, split out at the recorded rate.
    let (subtotal, tax) = seller.split_tax(invoice.total);
    y -= 14.0;
    page.text(
        &format!("Subtotal (excl. tax): {}", money(subtotal)),
        330.0,
        y,
        11.0,
        false,
    );
    page.text(
        &format!("Tax ({}): {}", seller.tax_rate(), money(tax)),
        330.0,
        y - 16.0,
        11.0,
        false,
    );
    page.text(
        &format!("Total: {}", money(invoice.total)),
        330.0,
        y - 36.0,
        12.0,
        true,
    );
    pdf.stream(contents, &page.content.finish());
    pdf.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::invoice::InvoiceLine;
    use domain::{AccountId, Timestamp};
    use uuid::Uuid;

    fn row(seller: Option<Seller>) -> InvoiceRow {
        InvoiceRow {
            invoice_id: Uuid::new_v4(),
            number: "2026-000042".into(),
            account_id: AccountId(Uuid::new_v4()),
            reason: "upgrade".into(),
            currency: "EUR".into(),
            lines: vec![InvoiceLine::new(
                "Upgrade from Starter to Creator, prorated to 2 January 2027",
                1,
                900,
            )],
            total: 900,
            status: "paid".into(),
            issued_at: Timestamp::from_unix_micros(1_796_277_352_000_000),
            paid_at: Some(Timestamp::from_unix_micros(1_796_277_352_000_000)),
            provider_reference: Some("ch_sandbox_1".into()),
            seller,
        }
    }

    /// The page's text, in the order it is drawn (the content stream is not compressed).
    fn shown(pdf: &[u8]) -> String {
        String::from_utf8_lossy(pdf).into_owned()
    }

    #[test]
    fn an_invoice_names_its_seller_dates_and_tax() {
        let seller = Seller {
            name: "Example Studio Ltd".into(),
            address: vec!["1 Example Street".into(), "75001 Paris".into()],
            tax_id: Some("FR00 000000000".into()),
            tax_rate_basis_points: 2000,
        };
        let text = shown(&invoice(&row(Some(seller)), "Ada <ada@example.com>"));
        for expected in [
            "Example Studio Ltd",
            "1 Example Street",
            "Tax ID: FR00 000000000",
            "Invoice number: 2026-000042",
            "Issued: 3 December 2026",
            "Paid: 3 December 2026",
            "Payment reference: ch_sandbox_1",
            "prorated to 2 January 2027",
            "Subtotal (excl. tax): 7.50 EUR",
            "Tax (20%): 1.50 EUR",
            "Total: 9.00 EUR",
        ] {
            assert!(text.contains(expected), "{expected:?}");
        }
    }

    #[test]
    fn a_zero_rate_is_shown_as_such() {
        let seller = Seller {
            name: "Example Studio Ltd".into(),
            address: vec![],
            tax_id: None,
            tax_rate_basis_points: 0,
        };
        let text = shown(&invoice(&row(Some(seller)), "Ada"));
        assert!(text.contains("Tax (0%): 0.00 EUR"));
        assert!(text.contains("Subtotal (excl. tax): 9.00 EUR"));
    }
}
