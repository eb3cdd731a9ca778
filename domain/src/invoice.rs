//! Invoices. Numbers come from a yearly series stream (`invoices-<year>`): the n-th
//! `InvoiceIssued` event of the year is invoice `<year>-<n>`, so numbers are unique and
//! without gaps by construction (a failed append takes no number). Payment is recorded in
//! the invoice's own stream (`invoice-<id>`), so paying does not contend on the series.

use crate::event::Event;
use crate::money::Money;
use crate::{AccountId, Aggregate, Timestamp};
use imbl::HashMap;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One line of an invoice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoiceLine {
    /// What was sold.
    pub description: String,
    /// How many.
    pub quantity: u32,
    /// Price of one, in minor units.
    pub unit_amount: i64,
    /// `quantity × unit_amount`.
    pub amount: i64,
}

impl InvoiceLine {
    /// A line of `quantity` × `unit_amount`.
    pub fn new(description: impl Into<String>, quantity: u32, unit_amount: i64) -> Self {
        Self {
            description: description.into(),
            quantity,
            unit_amount,
            amount: i64::from(quantity) * unit_amount,
        }
    }
}

/// Why an invoice was issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InvoiceReason {
    /// A credit pack.
    Purchase,
    /// The first period of a subscription.
    Subscription,
    /// The prorated difference of an upgrade.
    Upgrade,
    /// A renewed period.
    Renewal,
}

/// Who issues the invoices, and the tax their prices include: set per deployment in the
/// catalog (`[seller]`) and recorded on each invoice as it was when issued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seller {
    /// The company's name.
    pub name: String,
    /// Its postal address, a line each.
    #[serde(default)]
    pub address: Vec<String>,
    /// Its tax or VAT id, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tax_id: Option<String>,
    /// The tax rate included in every price, in basis points (2000 = 20 %; 0 allowed).
    #[serde(default)]
    pub tax_rate_basis_points: u32,
}

impl Seller {
    /// Splits a tax-inclusive `total` into (amount before tax, tax), the tax rounded half
    /// up to the minor unit.
    pub fn split_tax(&self, total: i64) -> (i64, i64) {
        let rate = i128::from(self.tax_rate_basis_points);
        let denominator = 10_000 + rate;
        let tax = (2 * i128::from(total) * rate + denominator) / (2 * denominator);
        let tax = i64::try_from(tax).unwrap_or(0);
        (total - tax, tax)
    }

    /// The rate as people read it: `20%`, `7.7%`, `0%`.
    pub fn tax_rate(&self) -> String {
        let (whole, hundredths) = (
            self.tax_rate_basis_points / 100,
            self.tax_rate_basis_points % 100,
        );
        match hundredths {
            0 => format!("{whole}%"),
            h if h % 10 == 0 => format!("{whole}.{}%", h / 10),
            h => format!("{whole}.{h:02}%"),
        }
    }
}

/// Events of a yearly series.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Event)]
#[serde(tag = "type")]
#[event(stream = "invoices")]
pub enum InvoiceSeriesEvent {
    /// An invoice got its number.
    #[event(no_personal_data)]
    InvoiceIssued {
        /// The invoice.
        invoice_id: Uuid,
        /// Makes issuing idempotent (e.g. `purchase:<id>`).
        key: String,
        /// `<year>-<000001>`.
        number: String,
        /// Billed account.
        account_id: AccountId,
        /// Why.
        reason: InvoiceReason,
        /// Currency of every amount.
        currency: String,
        /// Lines.
        lines: Vec<InvoiceLine>,
        /// Sum of the lines.
        total: i64,
        /// When.
        issued_at: Timestamp,
        /// The seller and the tax rate at the time (absent on invoices issued before
        /// they were recorded).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        seller: Option<Box<Seller>>,
    },
}

/// Issue an invoice (once per key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueInvoice {
    /// Id for the new invoice.
    pub invoice_id: Uuid,
    /// Idempotency key.
    pub key: String,
    /// Billed account.
    pub account_id: AccountId,
    /// Why.
    pub reason: InvoiceReason,
    /// Currency.
    pub currency: String,
    /// Lines (at least one).
    pub lines: Vec<InvoiceLine>,
    /// Year of the series (the stream's year).
    pub year: i32,
    /// The seller, as the catalog names it now.
    pub seller: Option<Seller>,
    /// Now.
    pub at: Timestamp,
}

/// Why an invoice was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvoiceError {
    /// No lines, or a line whose amount is not quantity × unit.
    #[error("an invoice needs consistent lines")]
    InvalidLines,
}

/// A year's invoices: how many were issued, and under which keys. Every invoice of the
/// year goes through this one stream, so its keys are a persistent map: copying the state
/// for a command costs O(1), not O(invoices).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InvoiceSeries {
    /// Invoices issued this year.
    pub issued: u64,
    /// Key to invoice id and number.
    pub keys: HashMap<String, (Uuid, String)>,
}

impl Aggregate for InvoiceSeries {
    type Event = InvoiceSeriesEvent;
    type Command = IssueInvoice;
    type Error = InvoiceError;

    fn decide(&self, c: &IssueInvoice) -> Result<Vec<InvoiceSeriesEvent>, InvoiceError> {
        if self.keys.contains_key(&c.key) {
            return Ok(vec![]);
        }
        if c.lines.is_empty()
            || c.lines
                .iter()
                .any(|l| l.amount != i64::from(l.quantity) * l.unit_amount)
        {
            return Err(InvoiceError::InvalidLines);
        }
        Ok(vec![InvoiceSeriesEvent::InvoiceIssued {
            invoice_id: c.invoice_id,
            key: c.key.clone(),
            number: format!("{}-{:06}", c.year, self.issued + 1),
            account_id: c.account_id,
            reason: c.reason,
            currency: c.currency.clone(),
            lines: c.lines.clone(),
            total: c.lines.iter().map(|l| l.amount).sum(),
            issued_at: c.at,
            seller: c.seller.clone().map(Box::new),
        }])
    }

    fn evolve(&mut self, event: &InvoiceSeriesEvent) {
        let InvoiceSeriesEvent::InvoiceIssued {
            invoice_id,
            key,
            number,
            ..
        } = event;
        self.issued += 1;
        self.keys.insert(key.clone(), (*invoice_id, number.clone()));
    }
}

/// Events of one invoice's own stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Event)]
#[serde(tag = "type")]
#[event(stream = "invoice")]
pub enum InvoiceEvent {
    /// The invoice was paid.
    #[event(no_personal_data)]
    InvoicePaid {
        /// Amount paid.
        amount: Money,
        /// The payment provider's reference.
        provider_reference: String,
        /// When.
        paid_at: Timestamp,
    },
}

/// Record a payment (once).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayInvoice {
    /// Amount paid.
    pub amount: Money,
    /// The provider's reference.
    pub provider_reference: String,
    /// Now.
    pub at: Timestamp,
}

/// Whether an invoice is paid.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InvoicePayment {
    /// Paid already.
    pub paid: bool,
}

impl Aggregate for InvoicePayment {
    type Event = InvoiceEvent;
    type Command = PayInvoice;
    type Error = std::convert::Infallible;

    fn decide(&self, c: &PayInvoice) -> Result<Vec<InvoiceEvent>, std::convert::Infallible> {
        if self.paid {
            return Ok(vec![]);
        }
        Ok(vec![InvoiceEvent::InvoicePaid {
            amount: c.amount.clone(),
            provider_reference: c.provider_reference.clone(),
            paid_at: c.at,
        }])
    }

    fn evolve(&mut self, _: &InvoiceEvent) {
        self.paid = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::given;

    fn issue(key: &str, id: u128) -> IssueInvoice {
        IssueInvoice {
            invoice_id: Uuid::from_u128(id),
            key: key.into(),
            account_id: AccountId(Uuid::from_u128(9)),
            reason: InvoiceReason::Purchase,
            currency: "EUR".into(),
            lines: vec![InvoiceLine::new("1000 credits", 2, 750)],
            year: 2026,
            seller: None,
            at: Timestamp::from_unix_micros(0),
        }
    }

    fn seller(basis_points: u32) -> Seller {
        Seller {
            name: "Studio Ltd".into(),
            address: vec![],
            tax_id: None,
            tax_rate_basis_points: basis_points,
        }
    }

    #[test]
    fn prices_include_the_tax_split_out_to_the_cent() {
        // 9.00 incl. 20 %: 7.50 + 1.50.
        assert_eq!(seller(2000).split_tax(900), (750, 150));
        // 5.00 incl. 20 %: 4.1666… → tax 0.83 (rounded half up), 4.17 before tax.
        assert_eq!(seller(2000).split_tax(500), (417, 83));
        assert_eq!(seller(0).split_tax(900), (900, 0), "zero allowed");
        assert_eq!(seller(770).split_tax(10_770), (10_000, 770));
        assert_eq!(seller(2000).tax_rate(), "20%");
        assert_eq!(seller(770).tax_rate(), "7.7%");
        assert_eq!(seller(1_025).tax_rate(), "10.25%");
        assert_eq!(seller(0).tax_rate(), "0%");
    }

    #[test]
    fn an_invoice_records_its_seller_as_it_was() {
        let mut command = issue("k", 1);
        command.seller = Some(seller(2000));
        let events = InvoiceSeries::default().decide(&command).unwrap();
        let InvoiceSeriesEvent::InvoiceIssued {
            seller: recorded, ..
        } = &events[0];
        assert_eq!(recorded.as_deref(), Some(&seller(2000)));
    }

    #[test]
    fn numbers_follow_each_other_and_keys_issue_once() {
        let first = given::<InvoiceSeries>([]).when(issue("a", 1)).then([
            InvoiceSeriesEvent::InvoiceIssued {
                invoice_id: Uuid::from_u128(1),
                key: "a".into(),
                number: "2026-000001".into(),
                account_id: AccountId(Uuid::from_u128(9)),
                reason: InvoiceReason::Purchase,
                currency: "EUR".into(),
                lines: vec![InvoiceLine::new("1000 credits", 2, 750)],
                total: 1500,
                issued_at: Timestamp::from_unix_micros(0),
                seller: None,
            },
        ]);
        assert_eq!(first.issued, 1);
        assert!(
            first.decide(&issue("a", 3)).unwrap().is_empty(),
            "same key: nothing new"
        );
        let events = first.decide(&issue("b", 2)).unwrap();
        let InvoiceSeriesEvent::InvoiceIssued { number, .. } = &events[0];
        assert_eq!(number, "2026-000002");
    }

    #[test]
    fn lines_must_add_up() {
        let mut bad = issue("a", 1);
        bad.lines[0].amount = 1;
        given::<InvoiceSeries>([])
            .when(bad)
            .then_error(InvoiceError::InvalidLines);
    }
}
