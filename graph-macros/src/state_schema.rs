//! `#[derive(StateSchema)]`: a `const` fingerprint of a type's serde data model.
//!
//! The pipeline: parse the item and its `#[serde]` / `#[state_schema]` attributes into a
//! [`Container`] (recording every refused attribute in a [`Ctxt`]), then either generate the
//! impl or, on error, a fallback impl (`SCHEMA = 0`) next to the errors, so the user sees ours
//! and not "`T` does not implement `StateSchema`" wherever the type is used.
//!
//! The fingerprint follows what serde's derive writes, because that is what bincode stores:
//! field and variant names after `rename`/`rename_all`, their order, variant indices, shapes
//! (unit, newtype, tuple, struct) and nested types through their own `SCHEMA`. The Rust name of
//! the type is left out so that moving or renaming it keeps checkpoints readable.

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::{ToTokens, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::meta::ParseNestedMeta;
use syn::spanned::Spanned;
use syn::visit_mut::{self, VisitMut};
use syn::{Attribute, Data, DeriveInput, Fields, Ident, LitStr, Token, Type};

use crate::ctxt::Ctxt;

/// Entry point: the derive's input item in, the impl (or fallback impl and errors) out.
pub(crate) fn derive(input: TokenStream) -> TokenStream {
    let item: DeriveInput = match syn::parse2(input) {
        Ok(item) => item,
        Err(error) => return error.to_compile_error(),
    };
    let cx = Ctxt::new();
    let container = Container::from_ast(&cx, &item);
    match cx.check() {
        Ok(()) => expand(&item, &container),
        Err(errors) => fallback(&item, &container.krate, &errors),
    }
}

// --- model ------------------------------------------------------------------------------------

/// The derive input as the fingerprint sees it.
struct Container {
    /// The runtime crate: `::graph_runtime` unless `#[state_schema(crate = path)]`.
    krate: syn::Path,
    body: Body,
}

/// What the fingerprint is made of.
enum Body {
    /// `#[state_schema(as = T)]` / `with = ".."` on the container, or `#[serde(transparent)]`.
    Whole(FieldSchema),
    /// A struct with named fields.
    Struct(Vec<Field>),
    /// A tuple struct of one field: serde's newtype struct.
    Newtype(Field),
    /// A tuple struct of several (or zero) fields.
    Tuple(Vec<Field>),
    /// A unit struct.
    Unit,
    /// An enum, externally tagged (serde's default, the only tagging bincode reads back).
    Enum(Vec<Variant>),
}

/// A field that serde writes (skipped fields are left out).
struct Field {
    /// The serde name; `None` for tuple fields.
    name: Option<String>,
    schema: FieldSchema,
}

/// Where a field's fingerprint comes from.
enum FieldSchema {
    /// `<T as StateSchema>::SCHEMA` of the field's own type (self-references replaced).
    Type(Type),
    /// `#[state_schema(as = T)]`, `with = ".."`, or both.
    Override {
        as_type: Option<Type>,
        with: Option<LitStr>,
    },
    /// `#[state_schema(recursive)]`: the fixed "recursive" marker.
    Recursive(Span),
}

/// A variant that serde writes.
struct Variant {
    name: String,
    /// serde's variant index: its position among all variants.
    index: u32,
    shape: Shape,
}

/// A variant's shape in serde's data model.
enum Shape {
    Unit,
    Newtype(Box<Field>),
    Tuple(Vec<Field>),
    Struct(Vec<Field>),
}

impl Container {
    fn from_ast(cx: &Ctxt, item: &DeriveInput) -> Container {
        let serde = SerdeAttrs::parse(&item.attrs);
        let ours = OurAttrs::parse(cx, &item.attrs, Place::Container);
        let krate = ours
            .krate
            .clone()
            .unwrap_or_else(crate::expand::paths::default_crate);
        let whole = ours.override_schema();

        check_converts(cx, &serde, whole.is_some());
        check_refused(cx, &serde);
        check_tagging(cx, &serde);

        let self_ident = &item.ident;
        let body = match (&item.data, whole) {
            (Data::Union(data), _) => {
                cx.error_spanned_by(
                    data.union_token,
                    "`#[derive(StateSchema)]` only works on a struct or an enum: serde has no data model for a union",
                );
                Body::Unit
            }
            (_, Some(whole)) => {
                // The shape comes from elsewhere; still check the attributes of the fields.
                check_fields(cx, &item.data, self_ident, &krate);
                Body::Whole(whole)
            }
            (Data::Struct(data), None) => {
                let rule = serde.rename_all.unwrap_or_default();
                let fields = parse_fields(cx, &data.fields, rule, self_ident, &krate);
                if serde.transparent {
                    match fields.into_iter().next() {
                        Some(field) => Body::Whole(field.schema),
                        // serde reports a transparent struct without a field itself.
                        None => Body::Unit,
                    }
                } else {
                    match &data.fields {
                        Fields::Named(_) => Body::Struct(fields),
                        Fields::Unnamed(unnamed) if unnamed.unnamed.len() == 1 => {
                            match fields.into_iter().next() {
                                Some(field) => Body::Newtype(field),
                                None => Body::Tuple(Vec::new()),
                            }
                        }
                        Fields::Unnamed(_) => Body::Tuple(fields),
                        Fields::Unit => Body::Unit,
                    }
                }
            }
            (Data::Enum(data), None) => {
                Body::Enum(parse_variants(cx, data, &serde, self_ident, &krate))
            }
        };
        Container { krate, body }
    }
}

/// Checks the variants of an enum and turns the ones serde writes into [`Variant`]s.
fn parse_variants(
    cx: &Ctxt,
    data: &syn::DataEnum,
    container: &SerdeAttrs,
    self_ident: &Ident,
    krate: &syn::Path,
) -> Vec<Variant> {
    let mut variants = Vec::new();
    // serde writes a variant's position among all variants, but reads it as a position among
    // the variants it can read: a variant skipped when reading shifts every later one, so
    // bincode would read the wrong variant. Trailing skipped variants shift nothing.
    let mut skipped: Option<&Ident> = None;
    for (index, variant) in data.variants.iter().enumerate() {
        let serde = SerdeAttrs::parse(&variant.attrs);
        // Variants take no `#[state_schema]` keys: this only reports misuse.
        OurAttrs::parse(cx, &variant.attrs, Place::Variant);
        check_refused(cx, &serde);
        check_variant(cx, &serde);
        if serde.skip_deserializing.is_some() {
            skipped.get_or_insert(&variant.ident);
            continue;
        }
        if let Some(first) = skipped {
            cx.error_spanned_by(
                first,
                format!(
                    "skipped variant `{first}` comes before `{}`: serde numbers the variants it reads without the skipped ones, so bincode would read the wrong variant; move the skipped variants to the end of the enum",
                    variant.ident
                ),
            );
            skipped = None;
        }
        let name = serde.rename.clone().unwrap_or_else(|| {
            container
                .rename_all
                .unwrap_or_default()
                .apply_to_variant(&variant.ident.unraw().to_string())
        });
        let rule = serde
            .rename_all
            .or(container.rename_all_fields)
            .unwrap_or_default();
        let fields = parse_fields(cx, &variant.fields, rule, self_ident, krate);
        let shape = match &variant.fields {
            Fields::Unit => Shape::Unit,
            Fields::Named(_) => Shape::Struct(fields),
            Fields::Unnamed(unnamed) if unnamed.unnamed.len() == 1 => {
                match fields.into_iter().next() {
                    Some(field) => Shape::Newtype(Box::new(field)),
                    None => Shape::Tuple(Vec::new()),
                }
            }
            Fields::Unnamed(_) => Shape::Tuple(fields),
        };
        variants.push(Variant {
            name,
            index: u32::try_from(index).unwrap_or(u32::MAX),
            shape,
        });
    }
    variants
}

/// A field's type must be one the fingerprint can name as `<T as StateSchema>`: a trait
/// object (`dyn Trait`, or a bare `Trait + Send`) or `impl Trait` is no type a checkpointed
/// field can have (unsized, or not a type at all), and written into the fingerprint it would
/// only add a parse error to the compiler's own.
fn check_field_type(cx: &Ctxt, ty: &Type) {
    let mut ty = ty;
    while let Type::Group(group) = ty {
        ty = &group.elem;
    }
    match ty {
        Type::TraitObject(_) => cx.error_at(
            ty.span(),
            "a state field cannot be a trait object: it has no size and serde cannot read one back; use a concrete type, an enum of the cases, or `Box<T>` of a concrete `T`",
        ),
        Type::ImplTrait(_) => cx.error_at(
            ty.span(),
            "`impl Trait` is not a type a state field can have; name the concrete type",
        ),
        _ => {}
    }
}

/// Checks the field attributes of a type whose fingerprint comes from elsewhere.
fn check_fields(cx: &Ctxt, data: &Data, self_ident: &Ident, krate: &syn::Path) {
    let rule = RenameRule::None;
    match data {
        Data::Struct(data) => {
            parse_fields_with(cx, &data.fields, rule, self_ident, krate, false);
        }
        Data::Enum(data) => {
            for variant in &data.variants {
                parse_fields_with(cx, &variant.fields, rule, self_ident, krate, false);
            }
        }
        Data::Union(_) => {}
    }
}

/// Checks the fields and keeps the ones serde writes, in declaration order.
fn parse_fields(
    cx: &Ctxt,
    fields: &Fields,
    rule: RenameRule,
    self_ident: &Ident,
    krate: &syn::Path,
) -> Vec<Field> {
    parse_fields_with(cx, fields, rule, self_ident, krate, true)
}

/// [`parse_fields`]; `own_shape` is false when the container's fingerprint comes from
/// `#[state_schema(as/with)]`, so a field's `#[serde(with)]` needs no escape hatch of its own.
fn parse_fields_with(
    cx: &Ctxt,
    fields: &Fields,
    rule: RenameRule,
    self_ident: &Ident,
    krate: &syn::Path,
    own_shape: bool,
) -> Vec<Field> {
    let mut out = Vec::new();
    for field in fields {
        let serde = SerdeAttrs::parse(&field.attrs);
        let ours = OurAttrs::parse(cx, &field.attrs, Place::Field);
        check_refused(cx, &serde);
        // Skipped both ways: serde neither writes nor reads it, so it is not in the data.
        if serde.skip_serializing.is_some() && serde.skip_deserializing.is_some() {
            continue;
        }
        if let Some(span) = serde.skip_serializing {
            cx.error_at(
                span,
                "`skip_serializing` without `skip_deserializing` cannot be checkpointed: bincode would read a field that was never written; use `#[serde(skip)]`",
            );
        }
        if let Some(span) = serde.skip_deserializing {
            cx.error_at(
                span,
                "`skip_deserializing` without `skip_serializing` cannot be checkpointed: bincode would not read a field that was written; use `#[serde(skip)]`",
            );
        }
        let schema = match ours.override_schema() {
            Some(schema) => {
                if let FieldSchema::Override {
                    as_type: Some(ty), ..
                } = &schema
                {
                    check_field_type(cx, ty);
                }
                schema
            }
            None => {
                if let Some((key, span)) = serde.with.as_ref().filter(|_| own_shape) {
                    cx.error_at(
                        *span,
                        format!(
                            "`#[serde({key})]` changes how this field is written, which the fingerprint of its type cannot know; add `#[state_schema(as = Type)]` (a type serde writes the same way) or `#[state_schema(with = \"name-v1\")]` (a name to change whenever that format changes)"
                        ),
                    );
                }
                check_field_type(cx, &field.ty);
                FieldSchema::Type(replace_self(field.ty.clone(), self_ident, krate))
            }
        };
        let name = field.ident.as_ref().map(|ident| {
            serde
                .rename
                .clone()
                .unwrap_or_else(|| rule.apply_to_field(&ident.unraw().to_string()))
        });
        out.push(Field { name, schema });
    }
    out
}

/// `into`/`from`/`try_from` make serde write or read another type, whose shape only the user
/// knows: they need the container's `#[state_schema(as = T)]` (or `with`).
fn check_converts(cx: &Ctxt, serde: &SerdeAttrs, has_override: bool) {
    if has_override {
        return;
    }
    for (key, span) in &serde.converts {
        cx.error_at(
            *span,
            format!(
                "`#[serde({key})]` makes serde write another type, so its fingerprint cannot come from this one; add `#[state_schema(as = ThatType)]` next to it"
            ),
        );
    }
}

/// Only serde's default enum representation (externally tagged: the variant index, then the
/// content) reads back from bincode: the others need `deserialize_any` or identifiers, which
/// bincode does not support (tests/schema.rs shows each failing).
fn check_tagging(cx: &Ctxt, serde: &SerdeAttrs) {
    if let Some(span) = serde.untagged {
        cx.error_at(
            span,
            "`#[serde(untagged)]` cannot be checkpointed: bincode cannot read an untagged enum back (serde needs `deserialize_any` to guess the variant); remove `untagged`",
        );
    }
    match (serde.tag, serde.content) {
        (Some(span), None) => cx.error_at(
            span,
            "an internally tagged enum (`#[serde(tag = \"…\")]`) cannot be checkpointed: bincode cannot read it back (serde needs `deserialize_any` to find the tag); remove `tag`",
        ),
        (Some(span), Some(_)) | (None, Some(span)) => cx.error_at(
            span,
            "an adjacently tagged enum (`#[serde(tag = \"…\", content = \"…\")]`) cannot be checkpointed: bincode cannot read it back (serde reads the tag as an identifier, which bincode does not support); remove `tag` and `content`",
        ),
        (None, None) => {}
    }
}

/// An untagged variant needs `deserialize_any`, like an untagged enum. A variant's
/// `#[serde(with)]` rewrites the whole variant, which a field-level escape hatch describes
/// better, so it is sent there.
fn check_variant(cx: &Ctxt, serde: &SerdeAttrs) {
    if let Some(span) = serde.untagged {
        cx.error_at(
            span,
            "an untagged variant (`#[serde(untagged)]`) cannot be checkpointed: bincode cannot read it back (serde needs `deserialize_any`); remove `untagged`",
        );
    }
    if let Some((key, span)) = &serde.with {
        cx.error_at(
            *span,
            format!(
                "`#[serde({key})]` on a variant is not supported by `StateSchema`; put it on the variant's field, with `#[state_schema(as = Type)]` or `#[state_schema(with = \"name-v1\")]` next to it"
            ),
        );
    }
}

/// The serde attributes refused wherever they appear. `flatten` is read back with
/// `deserialize_any`; `skip_serializing_if` leaves a field out of the bytes while the reader,
/// which has no names to go by, still expects it.
fn check_refused(cx: &Ctxt, serde: &SerdeAttrs) {
    if let Some(span) = serde.flatten {
        cx.error_at(
            span,
            "`#[serde(flatten)]` cannot be checkpointed: bincode cannot read a flattened field back (serde needs `deserialize_any` for it); remove `flatten` and keep the field nested",
        );
    }
    if let Some(span) = serde.skip_serializing_if {
        cx.error_at(
            span,
            "`skip_serializing_if` cannot be checkpointed: bincode writes no field names, so a field left out shifts every field after it; remove it (or use `#[serde(skip)]` to keep the field out of checkpoints)",
        );
    }
}

// --- self references --------------------------------------------------------------------------

/// Replaces every mention of the type being derived (`Self`, `Tree`, `Tree<T>`) inside a field's
/// type by the "recursive" marker, so `Vec<Tree>` is a sequence of "recursive" and the `const`
/// does not depend on itself.
fn replace_self(mut ty: Type, self_ident: &Ident, krate: &syn::Path) -> Type {
    let rt = crate::expand::paths::private(krate);
    let marker = quote!(#rt::Recursive);
    struct Replace<'a> {
        self_ident: &'a Ident,
        marker: &'a TokenStream,
    }
    impl VisitMut for Replace<'_> {
        fn visit_type_mut(&mut self, ty: &mut Type) {
            if let Type::Path(path) = ty
                && path.qself.is_none()
            {
                let segments = &path.path.segments;
                let is_self = segments.len() == 1 && segments[0].ident == "Self";
                let is_own = segments
                    .last()
                    .is_some_and(|last| last.ident == *self.self_ident);
                if is_self || is_own {
                    let span = ty.span();
                    let marker = self.marker;
                    *ty = Type::Verbatim(quote_spanned!(span=> #marker));
                    return;
                }
            }
            visit_mut::visit_type_mut(self, ty);
        }

        // An array length is a value, not a part of the shape: `[u8; size_of::<Self>()]`
        // stays as written.
        fn visit_expr_mut(&mut self, _: &mut syn::Expr) {}
    }
    Replace {
        self_ident,
        marker: &marker,
    }
    .visit_type_mut(&mut ty);
    ty
}

// --- attributes -------------------------------------------------------------------------------

/// What the fingerprint needs from one item's `#[serde(…)]` attributes. Malformed ones are
/// ignored here: serde's derive reports them.
#[derive(Default)]
struct SerdeAttrs {
    rename: Option<String>,
    rename_all: Option<RenameRule>,
    rename_all_fields: Option<RenameRule>,
    transparent: bool,
    skip_serializing: Option<Span>,
    skip_deserializing: Option<Span>,
    skip_serializing_if: Option<Span>,
    flatten: Option<Span>,
    untagged: Option<Span>,
    tag: Option<Span>,
    content: Option<Span>,
    /// `with`, `serialize_with` or `deserialize_with`.
    with: Option<(String, Span)>,
    /// `into`, `from`, `try_from`.
    converts: Vec<(String, Span)>,
}

impl SerdeAttrs {
    fn parse(attrs: &[Attribute]) -> SerdeAttrs {
        let mut out = SerdeAttrs::default();
        for attr in attrs.iter().filter(|attr| attr.path().is_ident("serde")) {
            let _ = attr.parse_nested_meta(|meta| out.key(meta));
        }
        out
    }

    fn key(&mut self, meta: ParseNestedMeta) -> syn::Result<()> {
        let Some(key) = meta.path.get_ident().map(Ident::to_string) else {
            return skip_value(&meta);
        };
        let span = meta.path.span();
        match key.as_str() {
            "rename" => {
                if let Some(name) = serialize_name(&meta)? {
                    self.rename = Some(name);
                }
            }
            "rename_all" => {
                if let Some(rule) = serialize_name(&meta)? {
                    self.rename_all = Some(RenameRule::from_str(&rule));
                }
            }
            "rename_all_fields" => {
                if let Some(rule) = serialize_name(&meta)? {
                    self.rename_all_fields = Some(RenameRule::from_str(&rule));
                }
            }
            "transparent" => self.transparent = true,
            "skip" => {
                self.skip_serializing = Some(span);
                self.skip_deserializing = Some(span);
            }
            "skip_serializing" => self.skip_serializing = Some(span),
            "skip_deserializing" => self.skip_deserializing = Some(span),
            "skip_serializing_if" => {
                self.skip_serializing_if = Some(span);
                skip_value(&meta)?;
            }
            "flatten" => self.flatten = Some(span),
            "untagged" => self.untagged = Some(span),
            "tag" => {
                self.tag = Some(span);
                skip_value(&meta)?;
            }
            "content" => {
                self.content = Some(span);
                skip_value(&meta)?;
            }
            "with" | "serialize_with" | "deserialize_with" => {
                self.with.get_or_insert((key, span));
                skip_value(&meta)?;
            }
            "into" | "from" | "try_from" => {
                self.converts.push((key, span));
                skip_value(&meta)?;
            }
            _ => skip_value(&meta)?,
        }
        Ok(())
    }
}

/// `rename = "a"` or `rename(serialize = "a", deserialize = "b")`: the serialize name.
fn serialize_name(meta: &ParseNestedMeta) -> syn::Result<Option<String>> {
    if meta.input.peek(Token![=]) {
        let lit: LitStr = meta.value()?.parse()?;
        return Ok(Some(lit.value()));
    }
    let mut name = None;
    meta.parse_nested_meta(|inner| {
        if inner.path.is_ident("serialize") {
            let lit: LitStr = inner.value()?.parse()?;
            name = Some(lit.value());
            Ok(())
        } else {
            skip_value(&inner)
        }
    })?;
    Ok(name)
}

/// Consumes a key's value (`= expr` or `(…)`) that the fingerprint does not need.
fn skip_value(meta: &ParseNestedMeta) -> syn::Result<()> {
    if meta.input.peek(Token![=]) {
        meta.value()?.parse::<syn::Expr>()?;
    } else if meta.input.peek(syn::token::Paren) {
        meta.input.parse::<TokenTree>()?;
    }
    Ok(())
}

/// Where a `#[state_schema(…)]` attribute is, for the keys it accepts.
#[derive(Clone, Copy, PartialEq)]
enum Place {
    Container,
    Variant,
    Field,
}

/// The keys of `#[state_schema(…)]`.
#[derive(Default)]
struct OurAttrs {
    krate: Option<syn::Path>,
    as_type: Option<Type>,
    with: Option<LitStr>,
    recursive: Option<Span>,
}

impl OurAttrs {
    fn parse(cx: &Ctxt, attrs: &[Attribute], place: Place) -> OurAttrs {
        let mut out = OurAttrs::default();
        for attr in attrs
            .iter()
            .filter(|attr| attr.path().is_ident("state_schema"))
        {
            if place == Place::Variant {
                cx.error_spanned_by(
                    attr,
                    "`#[state_schema]` has no keys for a variant; put `as`, `with` or `recursive` on the variant's fields",
                );
                continue;
            }
            let result = attr.parse_nested_meta(|meta| out.key(cx, &meta, place));
            if let Err(error) = result {
                cx.syn_error(error);
            }
        }
        if let (Some(span), true) = (out.recursive, out.as_type.is_some() || out.with.is_some()) {
            cx.error_at(
                span,
                "`recursive` replaces the field's fingerprint, so it cannot go with `as` or `with`; keep one",
            );
        }
        out
    }

    fn key(&mut self, cx: &Ctxt, meta: &ParseNestedMeta, place: Place) -> syn::Result<()> {
        let key = meta
            .path
            .get_ident()
            .map(Ident::to_string)
            .unwrap_or_default();
        let duplicate = |seen: bool| {
            if seen {
                cx.error_spanned_by(
                    &meta.path,
                    format!("duplicate key `{key}` in `#[state_schema]`; remove one"),
                );
            }
        };
        match (key.as_str(), place) {
            ("as", _) => {
                duplicate(self.as_type.is_some());
                let value = meta.value()?;
                let span = value.span();
                self.as_type = Some(
                    value
                        .parse()
                        .map_err(|_| syn::Error::new(span, "`as` takes a type: `as = Type`"))?,
                );
            }
            ("with", _) => {
                duplicate(self.with.is_some());
                let value = meta.value()?;
                let span = value.span();
                self.with = Some(value.parse().map_err(|_| {
                    syn::Error::new(span, "`with` takes a string: `with = \"name-v1\"`")
                })?);
            }
            ("recursive", Place::Field) => {
                duplicate(self.recursive.is_some());
                self.recursive = Some(meta.path.span());
            }
            ("crate", Place::Container) => {
                duplicate(self.krate.is_some());
                let value = meta.value()?;
                let span = value.span();
                let path = if value.peek(LitStr) {
                    value
                        .parse::<LitStr>()
                        .and_then(|lit| lit.parse_with(syn::Path::parse_mod_style))
                } else {
                    value.call(syn::Path::parse_mod_style)
                };
                self.krate = Some(path.map_err(|_| {
                    syn::Error::new(span, "`crate` takes a path: `crate = ::graph_runtime`")
                })?);
            }
            _ => {
                let expected = match place {
                    Place::Container => {
                        "`as = Type`, `with = \"name-v1\"` or `crate = path` on a type"
                    }
                    _ => "`as = Type`, `with = \"name-v1\"` or `recursive` on a field",
                };
                let message = if key.is_empty() {
                    format!("unknown key in `#[state_schema]`; expected {expected}")
                } else {
                    format!("unknown key `{key}` in `#[state_schema]`; expected {expected}")
                };
                return Err(meta.error(message));
            }
        }
        Ok(())
    }

    /// The fingerprint these keys set in place of the item's own, if any.
    fn override_schema(&self) -> Option<FieldSchema> {
        if let Some(span) = self.recursive {
            return Some(FieldSchema::Recursive(span));
        }
        if self.as_type.is_none() && self.with.is_none() {
            return None;
        }
        Some(FieldSchema::Override {
            as_type: self.as_type.clone(),
            with: self.with.clone(),
        })
    }
}

/// serde's `rename_all` rules, applied exactly as serde applies them.
#[derive(Clone, Copy, Default, PartialEq, Debug)]
enum RenameRule {
    #[default]
    None,
    Lower,
    Upper,
    Pascal,
    Camel,
    Snake,
    ScreamingSnake,
    Kebab,
    ScreamingKebab,
}

impl RenameRule {
    /// An unknown rule is serde's error to report; here it renames nothing.
    fn from_str(rule: &str) -> RenameRule {
        match rule {
            "lowercase" => RenameRule::Lower,
            "UPPERCASE" => RenameRule::Upper,
            "PascalCase" => RenameRule::Pascal,
            "camelCase" => RenameRule::Camel,
            "snake_case" => RenameRule::Snake,
            "SCREAMING_SNAKE_CASE" => RenameRule::ScreamingSnake,
            "kebab-case" => RenameRule::Kebab,
            "SCREAMING-KEBAB-CASE" => RenameRule::ScreamingKebab,
            _ => RenameRule::None,
        }
    }

    /// A variant name, written in PascalCase in Rust.
    fn apply_to_variant(self, variant: &str) -> String {
        match self {
            RenameRule::None | RenameRule::Pascal => variant.to_owned(),
            RenameRule::Lower => variant.to_ascii_lowercase(),
            RenameRule::Upper => variant.to_ascii_uppercase(),
            RenameRule::Camel => {
                let mut chars = variant.chars();
                match chars.next() {
                    Some(first) => first.to_ascii_lowercase().to_string() + chars.as_str(),
                    None => String::new(),
                }
            }
            RenameRule::Snake => {
                let mut snake = String::new();
                for (i, ch) in variant.char_indices() {
                    if i > 0 && ch.is_uppercase() {
                        snake.push('_');
                    }
                    snake.push(ch.to_ascii_lowercase());
                }
                snake
            }
            RenameRule::ScreamingSnake => RenameRule::Snake
                .apply_to_variant(variant)
                .to_ascii_uppercase(),
            RenameRule::Kebab => RenameRule::Snake
                .apply_to_variant(variant)
                .replace('_', "-"),
            RenameRule::ScreamingKebab => RenameRule::ScreamingSnake
                .apply_to_variant(variant)
                .replace('_', "-"),
        }
    }

    /// A field name, written in snake_case in Rust.
    fn apply_to_field(self, field: &str) -> String {
        match self {
            RenameRule::None | RenameRule::Lower | RenameRule::Snake => field.to_owned(),
            RenameRule::Upper | RenameRule::ScreamingSnake => field.to_ascii_uppercase(),
            RenameRule::Pascal => {
                let mut pascal = String::new();
                let mut capitalize = true;
                for ch in field.chars() {
                    if ch == '_' {
                        capitalize = true;
                    } else if capitalize {
                        pascal.push(ch.to_ascii_uppercase());
                        capitalize = false;
                    } else {
                        pascal.push(ch);
                    }
                }
                pascal
            }
            RenameRule::Camel => {
                let pascal = RenameRule::Pascal.apply_to_field(field);
                let mut chars = pascal.chars();
                match chars.next() {
                    Some(first) => first.to_ascii_lowercase().to_string() + chars.as_str(),
                    None => String::new(),
                }
            }
            RenameRule::Kebab => field.replace('_', "-"),
            RenameRule::ScreamingKebab => field.to_ascii_uppercase().replace('_', "-"),
        }
    }
}

// --- code generation --------------------------------------------------------------------------

/// The impl.
///
/// Each `<FieldType as StateSchema>::SCHEMA` is spanned at the user's field type, so when the
/// type has no impl, rustc's error (with the trait's `on_unimplemented` note) lands on that
/// type, as axum's `debug_handler` probes do. A separate probe function would only repeat the
/// same error with a longer note.
fn expand(item: &DeriveInput, container: &Container) -> TokenStream {
    let krate = &container.krate;
    let rt = crate::expand::paths::private(krate);
    let schema = Codegen { rt: &rt }.body(&container.body);

    let ident = &item.ident;
    let mut generics = item.generics.clone();
    let params: Vec<Ident> = generics
        .type_params()
        .map(|param| param.ident.clone())
        .collect();
    {
        let where_clause = generics.make_where_clause();
        for param in &params {
            where_clause
                .predicates
                .push(syn::parse_quote!(#param: #rt::StateSchema));
        }
    }
    let (impl_generics, ty_generics, where_clause) = generics.split_for_impl();

    quote! {
        #[automatically_derived]
        impl #impl_generics #rt::StateSchema for #ident #ty_generics #where_clause {
            const SCHEMA: ::core::primitive::u64 = {
                #schema
            };
        }
    }
}

/// Writes the `const` expressions of the fingerprint.
struct Codegen<'a> {
    rt: &'a TokenStream,
}

impl Codegen<'_> {
    fn start(&self, kind: &str) -> TokenStream {
        let rt = self.rt;
        quote!(#rt::Fingerprint::new(#kind))
    }

    fn body(&self, body: &Body) -> TokenStream {
        match body {
            Body::Whole(schema) => self.field(schema),
            Body::Struct(fields) => self.named("struct", fields),
            Body::Tuple(fields) => self.unnamed("tuple_struct", fields),
            Body::Newtype(field) => self.newtype("newtype_struct", field),
            Body::Unit => {
                let start = self.start("unit_struct");
                quote!(#start.finish())
            }
            Body::Enum(variants) => {
                let start = self.start("enum");
                let count = variants.len() as u64;
                let parts = variants.iter().map(|variant| {
                    let name = &variant.name;
                    let index = u64::from(variant.index);
                    let shape = match &variant.shape {
                        Shape::Unit => {
                            let start = self.start("unit_variant");
                            quote!(#start.finish())
                        }
                        Shape::Newtype(field) => self.newtype("newtype_variant", field),
                        Shape::Tuple(fields) => self.unnamed("tuple_variant", fields),
                        Shape::Struct(fields) => self.named("struct_variant", fields),
                    };
                    quote!(.str(#name).u64(#index).u64(#shape))
                });
                quote!(#start.u64(#count) #(#parts)* .finish())
            }
        }
    }

    fn named(&self, kind: &str, fields: &[Field]) -> TokenStream {
        let start = self.start(kind);
        let count = fields.len() as u64;
        let parts = fields.iter().map(|field| {
            let name = field.name.as_deref().unwrap_or_default();
            let schema = self.field(&field.schema);
            quote!(.str(#name).u64(#schema))
        });
        quote!(#start.u64(#count) #(#parts)* .finish())
    }

    fn unnamed(&self, kind: &str, fields: &[Field]) -> TokenStream {
        let start = self.start(kind);
        let count = fields.len() as u64;
        let parts = fields.iter().map(|field| {
            let schema = self.field(&field.schema);
            quote!(.u64(#schema))
        });
        quote!(#start.u64(#count) #(#parts)* .finish())
    }

    fn newtype(&self, kind: &str, field: &Field) -> TokenStream {
        let start = self.start(kind);
        let schema = self.field(&field.schema);
        quote!(#start.u64(#schema).finish())
    }

    fn field(&self, schema: &FieldSchema) -> TokenStream {
        let rt = self.rt;
        match schema {
            FieldSchema::Type(ty) => {
                quote_spanned!(ty.span()=> <#ty as #rt::StateSchema>::SCHEMA)
            }
            FieldSchema::Recursive(span) => {
                quote_spanned!(*span=> <#rt::Recursive as #rt::StateSchema>::SCHEMA)
            }
            FieldSchema::Override { as_type, with } => {
                let start = self.start("opaque");
                let with = with.as_ref().map(|with| quote!(.str(#with)));
                match (as_type, with) {
                    (Some(ty), None) => {
                        quote_spanned!(ty.span()=> <#ty as #rt::StateSchema>::SCHEMA)
                    }
                    (Some(ty), Some(with)) => {
                        let inner = quote_spanned!(ty.span()=> <#ty as #rt::StateSchema>::SCHEMA);
                        quote!(#start #with .u64(#inner).finish())
                    }
                    (None, with) => quote!(#start #with .finish()),
                }
            }
        }
    }
}

/// On error: the errors, and an impl with `SCHEMA = 0` so that code using the type as a state
/// does not add "`T` does not implement `StateSchema`" to them.
fn fallback(item: &DeriveInput, krate: &syn::Path, errors: &syn::Error) -> TokenStream {
    let errors = errors.to_compile_error();
    let ident = &item.ident;
    let rt = crate::expand::paths::private(krate);
    let (impl_generics, ty_generics, where_clause) = item.generics.split_for_impl();
    let mut out = errors;
    quote! {
        #[automatically_derived]
        impl #impl_generics #rt::StateSchema for #ident #ty_generics #where_clause {
            const SCHEMA: ::core::primitive::u64 = 0;
        }
    }
    .to_tokens(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use syn::parse_quote;

    /// The error messages the derive reports for `item`, in order.
    fn errors(item: DeriveInput) -> Vec<String> {
        let cx = Ctxt::new();
        let _ = Container::from_ast(&cx, &item);
        match cx.check() {
            Ok(()) => Vec::new(),
            Err(errors) => errors.into_iter().map(|e| e.to_string()).collect(),
        }
    }

    /// The container of an item that must have no error.
    fn container(item: DeriveInput) -> Container {
        let cx = Ctxt::new();
        let container = Container::from_ast(&cx, &item);
        if let Err(errors) = cx.check() {
            panic!("unexpected errors: {errors}");
        }
        container
    }

    fn field_names(fields: &[Field]) -> Vec<Option<&str>> {
        fields.iter().map(|field| field.name.as_deref()).collect()
    }

    /// Found by the `state_schema_macro` fuzz target: a field typed `SocketAddr +` (a bare
    /// trait object with a trailing `+`, which parses) was written into the fingerprint as
    /// `<SocketAddr + as StateSchema>`, which does not: a parse error on top of the compiler's
    /// own. Trait objects and `impl Trait` are now refused at the field's type.
    #[test]
    fn a_trait_object_or_impl_trait_field_is_refused_at_its_type() {
        // As text: rustfmt drops the trailing `+` of a type inside `parse_quote!`.
        for (i, source) in [
            "struct S { socket: std::net::SocketAddr+, n: u8 }",
            "struct S { n: u8, last: dyn std::fmt::Debug + Send }",
            "enum E { A(impl Clone) }",
            "struct S { #[state_schema(as = dyn Fn())] f: u8 }",
        ]
        .into_iter()
        .enumerate()
        {
            let found = errors(syn::parse_str(source).expect("an item"));
            assert_eq!(found.len(), 1, "item {i}: {found:?}");
            assert!(
                found[0].contains("trait object") || found[0].contains("impl Trait"),
                "{found:?}"
            );
        }
        let boxed = "struct S { boxed: Box<dyn std::error::Error> }";
        assert!(errors(syn::parse_str(boxed).expect("an item")).is_empty());
    }

    #[test]
    fn serde_names_rename_and_rename_all() {
        let item: DeriveInput = parse_quote! {
            #[serde(rename_all = "camelCase", deny_unknown_fields, rename = "Other")]
            struct Order {
                order_id: u64,
                #[serde(rename(serialize = "memo", deserialize = "note"))]
                note: String,
                #[serde(rename = "x", alias = "y", default)]
                r#type: u8,
                #[serde(skip)]
                cache: Vec<u8>,
                #[serde(default = "zero", borrow)]
                r#loop: u8,
            }
        };
        let Body::Struct(fields) = container(item).body else {
            panic!("not a struct body");
        };
        assert_eq!(
            field_names(&fields),
            [Some("orderId"), Some("memo"), Some("x"), Some("loop")]
        );
    }

    #[test]
    fn enum_variants_keep_serde_indices_and_shapes() {
        let item: DeriveInput = parse_quote! {
            #[serde(rename_all = "snake_case", rename_all_fields = "PascalCase")]
            enum Status {
                OpenNow,
                Paid { charge_id: String },
                #[serde(rename_all = "UPPERCASE")]
                Moved { to_city: String },
                Refunded(u64),
                Split(u64, u64),
                #[serde(skip_serializing)]
                Legacy,
                #[serde(skip)]
                Local,
            }
        };
        let Body::Enum(variants) = container(item).body else {
            panic!("not an enum body");
        };
        let names: Vec<(&str, u32)> = variants
            .iter()
            .map(|v| (v.name.as_str(), v.index))
            .collect();
        assert_eq!(
            names,
            [
                ("open_now", 0),
                ("paid", 1),
                ("moved", 2),
                ("refunded", 3),
                ("split", 4),
                ("legacy", 5)
            ]
        );
        let Shape::Struct(paid) = &variants[1].shape else {
            panic!("`Paid` is not a struct variant");
        };
        assert_eq!(field_names(paid), [Some("ChargeId")]);
        let Shape::Struct(moved) = &variants[2].shape else {
            panic!("`Moved` is not a struct variant");
        };
        assert_eq!(field_names(moved), [Some("TO_CITY")]);
        assert!(matches!(variants[3].shape, Shape::Newtype(_)));
        assert!(matches!(&variants[4].shape, Shape::Tuple(fields) if fields.len() == 2));
        assert!(matches!(variants[0].shape, Shape::Unit));
    }

    #[test]
    fn struct_kinds() {
        let newtype = container(parse_quote!(
            struct A(u8);
        ))
        .body;
        assert!(matches!(newtype, Body::Newtype(_)));
        let tuple = container(parse_quote!(
            struct A(u8, #[serde(skip)] u16);
        ))
        .body;
        assert!(matches!(tuple, Body::Tuple(fields) if fields.len() == 1));
        assert!(matches!(
            container(parse_quote!(
                struct A;
            ))
            .body,
            Body::Unit
        ));
        let empty = container(parse_quote!(
            struct A {}
        ))
        .body;
        assert!(matches!(empty, Body::Struct(fields) if fields.is_empty()));
        let transparent = container(parse_quote! {
            #[serde(transparent)]
            struct A { #[serde(skip)] cache: u8, inner: String }
        });
        assert!(matches!(
            transparent.body,
            Body::Whole(FieldSchema::Type(Type::Path(path))) if path.path.is_ident("String")
        ));
    }

    #[test]
    fn rename_rules_match_serde() {
        let variant = |rule: &str| RenameRule::from_str(rule).apply_to_variant("VeryTasty");
        assert_eq!(variant("lowercase"), "verytasty");
        assert_eq!(variant("UPPERCASE"), "VERYTASTY");
        assert_eq!(variant("PascalCase"), "VeryTasty");
        assert_eq!(variant("camelCase"), "veryTasty");
        assert_eq!(variant("snake_case"), "very_tasty");
        assert_eq!(variant("SCREAMING_SNAKE_CASE"), "VERY_TASTY");
        assert_eq!(variant("kebab-case"), "very-tasty");
        assert_eq!(variant("SCREAMING-KEBAB-CASE"), "VERY-TASTY");
        assert_eq!(variant("unknown"), "VeryTasty");
        let field = |rule: &str| RenameRule::from_str(rule).apply_to_field("very_tasty");
        assert_eq!(field("lowercase"), "very_tasty");
        assert_eq!(field("UPPERCASE"), "VERY_TASTY");
        assert_eq!(field("PascalCase"), "VeryTasty");
        assert_eq!(field("camelCase"), "veryTasty");
        assert_eq!(field("snake_case"), "very_tasty");
        assert_eq!(field("SCREAMING_SNAKE_CASE"), "VERY_TASTY");
        assert_eq!(field("kebab-case"), "very-tasty");
        assert_eq!(field("SCREAMING-KEBAB-CASE"), "VERY-TASTY");
    }

    #[test]
    fn self_references_become_the_marker() {
        let krate = crate::expand::paths::default_crate();
        let own: Ident = parse_quote!(Tree);
        let replaced = |ty: Type| replace_self(ty, &own, &krate).to_token_stream().to_string();
        let marker = ":: graph_runtime :: __private :: Recursive";
        assert_eq!(
            replaced(parse_quote!(Vec<Tree>)),
            format!("Vec < {marker} >")
        );
        assert_eq!(
            replaced(parse_quote!(Option<Box<Self>>)),
            format!("Option < Box < {marker} > >")
        );
        assert_eq!(
            replaced(parse_quote!(HashMap<String, crate::Tree<T>>)),
            format!("HashMap < String , {marker} >")
        );
        // An array length is a value, not a type to replace.
        assert_eq!(
            replaced(parse_quote!([u8; size_of::<Self>()])),
            "[u8 ; size_of :: < Self > ()]"
        );
        assert_eq!(replaced(parse_quote!(Vec<Forest>)), "Vec < Forest >");
    }

    #[test]
    fn escape_hatches() {
        let item: DeriveInput = parse_quote! {
            struct A {
                #[serde(with = "text")]
                #[state_schema(as = String)]
                a: Foreign,
                #[serde(serialize_with = "s", deserialize_with = "d")]
                #[state_schema(with = "foreign-v1")]
                b: Foreign,
                #[serde(with = "text")]
                #[state_schema(as = String, with = "v2")]
                c: Foreign,
                #[state_schema(recursive)]
                d: Vec<B>,
            }
        };
        let Body::Struct(fields) = container(item).body else {
            panic!("not a struct body");
        };
        assert!(matches!(
            &fields[0].schema,
            FieldSchema::Override {
                as_type: Some(_),
                with: None
            }
        ));
        assert!(matches!(
            &fields[1].schema,
            FieldSchema::Override { as_type: None, with: Some(with) } if with.value() == "foreign-v1"
        ));
        assert!(matches!(
            &fields[2].schema,
            FieldSchema::Override {
                as_type: Some(_),
                with: Some(_)
            }
        ));
        assert!(matches!(&fields[3].schema, FieldSchema::Recursive(_)));
    }

    #[test]
    fn container_overrides_and_crate_path() {
        let item = container(parse_quote! {
            #[serde(into = "String", try_from = "String")]
            #[state_schema(as = String, crate = "::my_rt")]
            struct Email { user: String, host: String }
        });
        assert!(matches!(item.body, Body::Whole(_)));
        assert_eq!(item.krate.to_token_stream().to_string(), ":: my_rt");
        // The container's fingerprint is given: a field's `with` needs nothing more, but the
        // refused attributes are still refused.
        let messages = errors(parse_quote! {
            #[state_schema(with = "email-v1")]
            struct Email { #[serde(with = "text")] a: u8, #[serde(flatten)] b: B }
        });
        assert_eq!(messages.len(), 1, "{messages:#?}");
        assert!(messages[0].starts_with("`#[serde(flatten)]`"));
        let item = container(parse_quote! {
            #[state_schema(crate = crate::rt)]
            struct A;
        });
        assert_eq!(item.krate.to_token_stream().to_string(), "crate :: rt");
        let messages = errors(parse_quote! {
            #[state_schema(crate = "not a path")]
            struct A;
        });
        assert_eq!(
            messages,
            ["`crate` takes a path: `crate = ::graph_runtime`"]
        );
    }

    #[test]
    fn refused_serde_attributes() {
        let messages = errors(parse_quote! {
            #[serde(into = "String")]
            struct A {
                #[serde(flatten)]
                a: B,
                #[serde(skip_serializing_if = "Option::is_none")]
                b: Option<u8>,
                #[serde(skip_serializing)]
                c: u8,
                #[serde(skip_deserializing)]
                d: u8,
                #[serde(with = "text")]
                e: u8,
                #[serde(deserialize_with = "text")]
                f: u8,
            }
        });
        let expected = [
            "`#[serde(into)]` makes serde write another type",
            "`#[serde(flatten)]` cannot be checkpointed",
            "`skip_serializing_if` cannot be checkpointed",
            "`skip_serializing` without `skip_deserializing`",
            "`skip_deserializing` without `skip_serializing`",
            "`#[serde(with)]` changes how this field is written",
            "`#[serde(deserialize_with)]` changes how this field is written",
        ];
        assert_eq!(messages.len(), expected.len(), "{messages:#?}");
        for (message, start) in messages.iter().zip(expected) {
            assert!(message.starts_with(start), "{message}");
        }
    }

    #[test]
    fn refused_enum_taggings() {
        let messages = errors(parse_quote! {
            #[serde(untagged)]
            enum A { X(u8) }
        });
        assert!(messages[0].starts_with("`#[serde(untagged)]` cannot be checkpointed"));
        let messages = errors(parse_quote! {
            #[serde(tag = "type")]
            enum A { X { a: u8 } }
        });
        assert!(messages[0].starts_with("an internally tagged enum"));
        let messages = errors(parse_quote! {
            #[serde(tag = "t", content = "c")]
            enum A { X(u8) }
        });
        assert!(messages[0].starts_with("an adjacently tagged enum"));
        let messages = errors(parse_quote! {
            enum A {
                X(u8),
                #[serde(untagged)]
                Y(String),
                #[serde(with = "text")]
                Z(u8),
            }
        });
        assert_eq!(messages.len(), 2, "{messages:#?}");
        assert!(messages[0].starts_with("an untagged variant"));
        assert!(messages[1].starts_with("`#[serde(with)]` on a variant"));
    }

    #[test]
    fn skipped_variants_must_come_last() {
        let messages = errors(parse_quote! {
            enum A { X, #[serde(skip)] Local, Y, #[serde(skip_deserializing)] Z }
        });
        assert_eq!(
            messages,
            [
                "skipped variant `Local` comes before `Y`: serde numbers the variants it reads without the skipped ones, so bincode would read the wrong variant; move the skipped variants to the end of the enum"
            ]
        );
    }

    #[test]
    fn our_attribute_mistakes() {
        let messages = errors(parse_quote! {
            #[state_schema(recursive)]
            enum A {
                #[state_schema(as = u8)]
                X {
                    #[state_schema(as = u8, as = u16)]
                    a: B,
                    #[state_schema(recursive, with = "v1")]
                    b: B,
                    #[state_schema(crate = ::rt)]
                    c: B,
                    #[state_schema(with = 3)]
                    d: B,
                },
            }
        });
        let expected = [
            "unknown key `recursive` in `#[state_schema]`; expected `as = Type`, `with = \"name-v1\"` or `crate = path` on a type",
            "`#[state_schema]` has no keys for a variant; put `as`, `with` or `recursive` on the variant's fields",
            "duplicate key `as` in `#[state_schema]`; remove one",
            "`recursive` replaces the field's fingerprint, so it cannot go with `as` or `with`; keep one",
            "unknown key `crate` in `#[state_schema]`; expected `as = Type`, `with = \"name-v1\"` or `recursive` on a field",
            "`with` takes a string: `with = \"name-v1\"`",
        ];
        assert_eq!(messages, expected);
    }

    #[test]
    fn union_is_an_error_with_a_fallback_impl() {
        let output = derive(quote!(union U { a: u32, b: f32 })).to_string();
        assert!(
            output.contains("only works on a struct or an enum"),
            "{output}"
        );
        assert!(
            output.contains("const SCHEMA : :: core :: primitive :: u64 = 0"),
            "{output}"
        );
    }

    #[test]
    fn generated_impl_bounds_type_parameters() {
        let output = derive(quote! {
            struct Page<'a, T, const N: usize> where T: Clone { items: Vec<T>, title: &'a str }
        })
        .to_string();
        assert!(
            output.contains("T : :: graph_runtime :: __private :: StateSchema"),
            "{output}"
        );
        assert!(!output.contains("compile_error"), "{output}");
    }

    #[test]
    fn input_that_is_not_an_item_is_an_error_not_a_panic() {
        let output = derive(quote!(
            fn f() {}
        ))
        .to_string();
        assert!(output.contains("compile_error"), "{output}");
    }

    #[test]
    fn malformed_serde_attributes_are_left_to_serde() {
        // serde reports these itself; the fingerprint ignores what it cannot read.
        let item = container(parse_quote! {
            #[serde(rename_all = 3, bound(serialize = "T: Serialize"), crate = "serde")]
            struct A { #[serde(rename(deserialize = "b"), getter = "x")] a: u8, #[serde(???)] c: u8 }
        });
        let Body::Struct(fields) = item.body else {
            panic!("not a struct body");
        };
        assert_eq!(field_names(&fields), [Some("a"), Some("c")]);
    }
}
