//! Invoice PDFs, written with a PDF library (pdf-writer) using the standard Helvetica
//! font, so text extraction (the tests read it with `lopdf`) finds the number, the lines and
//! the total.

use domain::money::Money;
use pdf_writer::{Content, Finish, Name, Pdf, Rect, Ref, Str};
use projections::billing::InvoiceRow;

/// Encodes text for a WinAnsi font: Latin-1 characters as they are, others as `?`.
fn win_ansi(text: &str) -> Vec<u8> {
    text.chars()
        .map(|c| if (c as u32) < 256 { c as u8 } else { b'?' })
        .collect()
}

/// A one-page A4 invoice.
pub fn invoice(invoice: &InvoiceRow, bill_to: &str) -> Vec<u8> {
    let (catalog, pages, page, font, bold, contents) = (
        Ref::new(1),
        Ref::new(2),
        Ref::new(3),
        Ref::new(4),
        Ref::new(5),
        Ref::new(6),
    );
    let (regular_name, bold_name) = (Name(b"F1"), Name(b"F2"));
    let mut pdf = Pdf::new();
    pdf.catalog(catalog).pages(pages);
    pdf.pages(pages).kids([page]).count(1);
    let mut p = pdf.page(page);
    p.media_box(Rect::new(0.0, 0.0, 595.0, 842.0));
    p.parent(pages);
    p.contents(contents);
    let mut resources = p.resources();
    resources
        .fonts()
        .pair(regular_name, font)
        .pair(bold_name, bold);
    resources.finish();
    p.finish();
    pdf.type1_font(font)
        .base_font(Name(b"Helvetica"))
        .encoding_predefined(Name(b"WinAnsiEncoding"));
    pdf.type1_font(bold)
        .base_font(Name(b"Helvetica-Bold"))
        .encoding_predefined(Name(b"WinAnsiEncoding"));

    let money = |amount: i64| Money::new(amount, &invoice.currency).display();
    let mut content = Content::new();
    let mut line = |text: &str, x: f32, y: f32, size: f32, heavy: bool| {
        content.begin_text();
        content.set_font(if heavy { bold_name } else { regular_name }, size);
        content.next_line(x, y);
        content.show(Str(&win_ansi(text)));
        content.end_text();
    };
    line("Invoice", 56.0, 780.0, 22.0, true);
    line(
        &format!("Invoice number: {}", invoice.number),
        56.0,
        750.0,
        11.0,
        false,
    );
    line(
        &format!("Issued: {}", invoice.issued_at.to_rfc3339()),
        56.0,
        735.0,
        11.0,
        false,
    );
    line(
        &format!("Status: {}", invoice.status),
        56.0,
        720.0,
        11.0,
        false,
    );
    line(&format!("Bill to: {bill_to}"), 56.0, 705.0, 11.0, false);
    line("Description", 56.0, 665.0, 11.0, true);
    line("Qty", 360.0, 665.0, 11.0, true);
    line("Unit price", 400.0, 665.0, 11.0, true);
    line("Amount", 490.0, 665.0, 11.0, true);
    let mut y = 645.0;
    for item in &invoice.lines {
        line(&item.description, 56.0, y, 10.0, false);
        line(&item.quantity.to_string(), 360.0, y, 10.0, false);
        line(&money(item.unit_amount), 400.0, y, 10.0, false);
        line(&money(item.amount), 490.0, y, 10.0, false);
        y -= 16.0;
    }
    line(
        &format!("Total: {}", money(invoice.total)),
        400.0,
        y - 20.0,
        12.0,
        true,
    );
    pdf.stream(contents, &content.finish());
    pdf.finish()
}
