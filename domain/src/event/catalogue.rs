//! The `catalogue!` macro: from one list of event enums (each declared with
//! `#[derive(Event)]`) it generates [`StreamCategory`](crate::StreamCategory),
//! [`DomainEvent`](crate::DomainEvent) and the conversions between them, and checks at
//! compile time that no stream prefix and no event type name is used twice.

use super::EventDeclaration;

/// Generates the catalogue from lines `/// docs  Category => Variant(EventEnum),`: the
/// stream category `Category` (prefix `EventEnum::STREAM`) holds the events `EventEnum`,
/// wrapped in `DomainEvent::Variant`.
macro_rules! catalogue {
    ($(
        $(#[doc = $doc:literal])*
        $category:ident => $variant:ident($event:ty),
    )+) => {
        /// The kind of aggregate a stream belongs to; a stream is named `<category>-<id>`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum StreamCategory {
            $(
                $(#[doc = $doc])*
                $category,
            )+
        }

        impl StreamCategory {
            /// Every category, for decoding by prefix.
            pub const ALL: [StreamCategory; [$(stringify!($category)),+].len()] =
                [$(Self::$category),+];

            /// The stream-name prefix.
            pub fn prefix(self) -> &'static str {
                match self {
                    $(Self::$category => <$event as $crate::event::Event>::STREAM,)+
                }
            }

            /// Every event type of streams of this category.
            pub fn declarations(self) -> &'static [$crate::event::EventDeclaration] {
                match self {
                    $(Self::$category => <$event as $crate::event::Event>::DECLARATIONS,)+
                }
            }
        }

        /// Any event of the domain. Serialises as the inner event, tagged by `type`.
        #[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
        #[serde(untagged)]
        pub enum DomainEvent {
            $(
                #[doc = concat!("Of a stream of [`StreamCategory::", stringify!($category), "`].")]
                $variant($event),
            )+
        }

        impl DomainEvent {
            /// The category of stream this event belongs in.
            pub fn category(&self) -> StreamCategory {
                match self {
                    $(Self::$variant(_) => StreamCategory::$category,)+
                }
            }

            /// The declaration of this event's type.
            pub fn declaration(&self) -> &'static $crate::event::EventDeclaration {
                match self {
                    $(Self::$variant(event) => $crate::event::Event::declaration(event),)+
                }
            }

            /// Reads an event of a stream of `category` (tagged by `type`).
            pub fn deserialize_in<'de, D: serde::Deserializer<'de>>(
                category: StreamCategory,
                deserializer: D,
            ) -> Result<Self, D::Error> {
                Ok(match category {
                    $(StreamCategory::$category => {
                        Self::$variant(<$event as serde::Deserialize>::deserialize(deserializer)?)
                    })+
                })
            }
        }

        $(
            impl From<$event> for DomainEvent {
                fn from(event: $event) -> Self {
                    Self::$variant(event)
                }
            }

            impl TryFrom<DomainEvent> for $event {
                type Error = DomainEvent;
                fn try_from(event: DomainEvent) -> Result<Self, DomainEvent> {
                    match event {
                        DomainEvent::$variant(event) => Ok(event),
                        other => Err(other),
                    }
                }
            }
        )+

        const _: () = $crate::event::catalogue::check_distinct(&[
            $((<$event as $crate::event::Event>::STREAM, <$event as $crate::event::Event>::DECLARATIONS),)+
        ]);
    };
}

pub(crate) use catalogue;

/// Fails the build (it runs in a constant) if two categories share a stream prefix or two
/// event types share a name anywhere in the catalogue: names are never reused, and the
/// codec's upcasters are keyed by type name.
pub(crate) const fn check_distinct(categories: &[(&str, &[EventDeclaration])]) {
    let mut i = 0;
    while i < categories.len() {
        let mut j = 0;
        while j < i {
            if same(categories[i].0, categories[j].0) {
                // This stream prefix is declared by two event enums.
                panic!("{}", categories[i].0);
            }
            j += 1;
        }
        let mut k = 0;
        while k < categories[i].1.len() {
            let name = categories[i].1[k].event_type;
            let mut l = 0;
            while l <= i {
                let others = categories[l].1;
                let mut m = 0;
                while m < others.len() && !(l == i && m == k) {
                    if same(name, others[m].event_type) {
                        // This event type name is declared twice in the catalogue.
                        panic!("{}", name);
                    }
                    m += 1;
                }
                l += 1;
            }
            k += 1;
        }
        i += 1;
    }
}

/// `a == b`, in a constant.
const fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}
