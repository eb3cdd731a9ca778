//! `#[derive(Event)]`, the one declaration of an event enum: its stream category, and for
//! each variant its type name, schema version and personal fields.
//!
//! The derive implements `domain::event::Event`; the syntax, what is checked and why are
//! documented there. This crate only reads the declarations and refuses incomplete ones
//! at compile time.

use proc_macro::TokenStream;
use proc_macro2::{Literal, TokenStream as TokenStream2, TokenTree};
use quote::quote;
use syn::ext::IdentExt;
use syn::meta::ParseNestedMeta;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Attribute, Data, DeriveInput, Error, Fields, Ident, LitInt, LitStr, Token, Variant};

/// Implements `domain::event::Event` for an internally tagged (`#[serde(tag = "type")]`)
/// enum of events; see that trait for the attributes.
#[proc_macro_derive(Event, attributes(event))]
pub fn derive_event(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as DeriveInput);
    expand(&input)
        .unwrap_or_else(Error::into_compile_error)
        .into()
}

/// What one variant declares, resolved against its fields.
struct Declaration {
    variant: Ident,
    event_type: String,
    version: Option<LitInt>,
    personal: Vec<String>,
}

fn expand(input: &DeriveInput) -> syn::Result<TokenStream2> {
    let Data::Enum(data) = &input.data else {
        return Err(Error::new_spanned(
            &input.ident,
            "#[derive(Event)] declares an enum of events",
        ));
    };
    if !input.generics.params.is_empty() {
        return Err(Error::new_spanned(
            &input.generics,
            "an event enum has no generic parameters",
        ));
    }
    if data.variants.is_empty() {
        return Err(Error::new_spanned(
            &input.ident,
            "an event enum has variants",
        ));
    }
    let stream = stream_of(input)?;
    check_enum_serde(input)?;

    let mut errors: Option<Error> = None;
    let mut declarations = Vec::new();
    for variant in &data.variants {
        match declaration_of(variant) {
            Ok(declaration) => declarations.push(declaration),
            Err(error) => push(&mut errors, error),
        }
    }
    for (i, declaration) in declarations.iter().enumerate() {
        if declarations[..i]
            .iter()
            .any(|earlier| earlier.event_type == declaration.event_type)
        {
            let message = format!("two variants are stored as `{}`", declaration.event_type);
            push(
                &mut errors,
                Error::new_spanned(&declaration.variant, message),
            );
        }
    }
    if let Some(errors) = errors {
        return Err(errors);
    }

    let name = &input.ident;
    let entries = declarations.iter().map(|d| {
        let event_type = &d.event_type;
        let version = match &d.version {
            Some(version) => quote!(#version),
            None => quote!(::domain::event::DEFAULT_SCHEMA_VERSION),
        };
        let personal = &d.personal;
        quote! {
            ::domain::event::EventDeclaration {
                event_type: #event_type,
                schema_version: #version,
                personal_fields: &[#(#personal),*],
            }
        }
    });
    let arms = declarations.iter().enumerate().map(|(i, d)| {
        let variant = &d.variant;
        let index = Literal::usize_unsuffixed(i);
        quote!(Self::#variant { .. } => &Self::DECLARATIONS[#index])
    });
    Ok(quote! {
        impl ::domain::event::Event for #name {
            const STREAM: &'static str = #stream;
            const DECLARATIONS: &'static [::domain::event::EventDeclaration] = &[#(#entries),*];

            fn declaration(&self) -> &'static ::domain::event::EventDeclaration {
                match self {
                    #(#arms,)*
                }
            }
        }
    })
}

fn push(errors: &mut Option<Error>, error: Error) {
    match errors {
        Some(errors) => errors.combine(error),
        None => *errors = Some(error),
    }
}

/// The enum's `#[event(stream = "...")]`: lower-case letters and digits, since a stream is
/// named `<prefix>-<id>` and read back by splitting at the first `-`.
fn stream_of(input: &DeriveInput) -> syn::Result<LitStr> {
    let mut stream: Option<LitStr> = None;
    for attr in event_attrs(&input.attrs) {
        attr.parse_nested_meta(|meta| {
            if !meta.path.is_ident("stream") {
                return Err(meta.error("expected `stream = \"<prefix>\"`"));
            }
            if stream.is_some() {
                return Err(meta.error("the stream is declared once"));
            }
            let value: LitStr = meta.value()?.parse()?;
            let text = value.value();
            let valid = !text.is_empty()
                && text
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
            if !valid {
                return Err(Error::new_spanned(
                    &value,
                    "a stream prefix is lower-case letters and digits (no `-`)",
                ));
            }
            stream = Some(value);
            Ok(())
        })?;
    }
    stream.ok_or_else(|| {
        Error::new_spanned(
            &input.ident,
            "declare the stream category: #[event(stream = \"<prefix>\")]",
        )
    })
}

/// The codec moves the `type` tag in and out of the stored JSON, and type names are the
/// variant names: the enum must be tagged by `type`, without renaming rules.
fn check_enum_serde(input: &DeriveInput) -> syn::Result<()> {
    let mut tagged = false;
    for attr in serde_attrs(&input.attrs) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("tag") {
                let tag: LitStr = meta.value()?.parse()?;
                if tag.value() != "type" {
                    return Err(Error::new_spanned(tag, "events are tagged by `type`"));
                }
                tagged = true;
                Ok(())
            } else if ["rename_all", "rename_all_fields", "content", "untagged"]
                .iter()
                .any(|key| meta.path.is_ident(key))
            {
                Err(meta.error("an event enum keeps serde's default names and tagging"))
            } else {
                skip_value(&meta)
            }
        })?;
    }
    if tagged {
        Ok(())
    } else {
        Err(Error::new_spanned(
            &input.ident,
            "an event enum is internally tagged: #[serde(tag = \"type\")]",
        ))
    }
}

fn declaration_of(variant: &Variant) -> syn::Result<Declaration> {
    let mut personal: Option<Vec<Ident>> = None;
    let mut version: Option<LitInt> = None;
    for attr in event_attrs(&variant.attrs) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("personal") || meta.path.is_ident("no_personal_data") {
                if personal.is_some() {
                    return Err(meta.error("the personal fields are declared once"));
                }
                let mut fields = Vec::new();
                if meta.path.is_ident("personal") {
                    let list;
                    syn::parenthesized!(list in meta.input);
                    fields.extend(Punctuated::<Ident, Token![,]>::parse_terminated(&list)?);
                    if fields.is_empty() {
                        return Err(meta.error("no personal field: write `no_personal_data`"));
                    }
                }
                personal = Some(fields);
                Ok(())
            } else if meta.path.is_ident("version") {
                if version.is_some() {
                    return Err(meta.error("the schema version is declared once"));
                }
                let value: LitInt = meta.value()?.parse()?;
                if value.base10_parse::<u32>()? == 0 {
                    return Err(Error::new_spanned(value, "schema versions start at 1"));
                }
                version = Some(value);
                Ok(())
            } else {
                Err(meta.error("expected `personal(...)`, `no_personal_data` or `version = N`"))
            }
        })?;
    }
    let Some(personal) = personal else {
        return Err(Error::new_spanned(
            &variant.ident,
            format!(
                "event `{}` does not declare its personal fields: add \
                 #[event(personal(field, ...))] or #[event(no_personal_data)]",
                variant.ident
            ),
        ));
    };
    let fields = stored_fields(variant)?;
    let mut names: Vec<String> = Vec::new();
    for field in &personal {
        let Some((_, stored, flattened)) = fields.iter().find(|(ident, ..)| ident == field) else {
            return Err(Error::new_spanned(
                field,
                format!("`{}` has no field `{field}`", variant.ident),
            ));
        };
        if *flattened {
            return Err(Error::new_spanned(
                field,
                "a personal field is sealed whole: it cannot be #[serde(flatten)]",
            ));
        }
        if names.contains(stored) {
            return Err(Error::new_spanned(field, "a personal field is named once"));
        }
        names.push(stored.clone());
    }
    Ok(Declaration {
        variant: variant.ident.clone(),
        event_type: stored_name(&variant.attrs, &variant.ident, true)?,
        version,
        personal: names,
    })
}

/// Each named field of a variant: its identifier, its name in the stored JSON and whether
/// it is flattened. Tuple variants are refused: the codec seals top-level named fields.
fn stored_fields(variant: &Variant) -> syn::Result<Vec<(Ident, String, bool)>> {
    match &variant.fields {
        Fields::Unit => Ok(Vec::new()),
        Fields::Unnamed(fields) => Err(Error::new(
            fields.span(),
            "an event is a struct or unit variant, so its personal fields have names",
        )),
        Fields::Named(fields) => fields
            .named
            .iter()
            .map(|field| {
                let ident = field.ident.clone().expect("named field");
                let stored = stored_name(&field.attrs, &ident, false)?;
                let flattened = is_flattened(&field.attrs)?;
                Ok((ident, stored, flattened))
            })
            .collect(),
    }
}

/// The name serde stores for a variant or field: its `#[serde(rename = "...")]`, else its
/// identifier. Split and case-changing renames are refused on variants (type names must
/// read back the same way they were written).
fn stored_name(attrs: &[Attribute], ident: &Ident, variant: bool) -> syn::Result<String> {
    let mut name = ident.unraw().to_string();
    for attr in serde_attrs(attrs) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("rename") {
                if !meta.input.peek(Token![=]) {
                    return Err(meta.error("use one name: #[serde(rename = \"...\")]"));
                }
                name = meta.value()?.parse::<LitStr>()?.value();
                Ok(())
            } else if variant
                && [
                    "rename_all",
                    "skip",
                    "skip_serializing",
                    "skip_deserializing",
                    "other",
                ]
                .iter()
                .any(|key| meta.path.is_ident(key))
            {
                Err(meta.error("an event variant is stored under its own name, with its fields"))
            } else {
                skip_value(&meta)
            }
        })?;
    }
    Ok(name)
}

fn is_flattened(attrs: &[Attribute]) -> syn::Result<bool> {
    let mut flattened = false;
    for attr in serde_attrs(attrs) {
        attr.parse_nested_meta(|meta| {
            flattened |= meta.path.is_ident("flatten");
            skip_value(&meta)
        })?;
    }
    Ok(flattened)
}

fn event_attrs(attrs: &[Attribute]) -> impl Iterator<Item = &Attribute> {
    attrs.iter().filter(|attr| attr.path().is_ident("event"))
}

fn serde_attrs(attrs: &[Attribute]) -> impl Iterator<Item = &Attribute> {
    attrs.iter().filter(|attr| attr.path().is_ident("serde"))
}

/// Passes over the value of a serde key this derive does not read (`= "..."` or `(...)`).
fn skip_value(meta: &ParseNestedMeta) -> syn::Result<()> {
    while !meta.input.is_empty() && !meta.input.peek(Token![,]) {
        meta.input.parse::<TokenTree>()?;
    }
    Ok(())
}
