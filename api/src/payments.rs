//! Which payment provider runs, said once at start.

use crate::config::PaymentsProvider;
use commands::payments::{PaymentProvider, SandboxProvider};
use std::sync::Arc;

/// The provider `kind` names, logged: the sandbox with a warning (it gives credits away),
/// none with what that refuses. A real provider is an implementation of
/// [`PaymentProvider`] chosen here.
pub fn provider(kind: PaymentsProvider) -> Option<Arc<dyn PaymentProvider>> {
    match kind {
        PaymentsProvider::Sandbox => {
            tracing::warn!(
                provider = "sandbox",
                "payments: the sandbox provider is on: no money moves, and anyone who opens a \
                 checkout link gets its credits (--payments-provider none turns it off)"
            );
            Some(Arc::new(SandboxProvider))
        }
        PaymentsProvider::None => {
            tracing::info!(
                provider = "none",
                "payments: no provider configured: purchases, paid plans and the billing \
                 portal answer 503 payments_unavailable"
            );
            None
        }
    }
}
