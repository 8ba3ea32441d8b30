//! Strict JSON bodies: serde reads a struct from a JSON array too (positionally, field by
//! field), so `{"estimate": ["USD_MICROCENTS", 5]}` would be an `Amount`. Request bodies are
//! objects in every schema of the API; this deserializer adapter refuses an array wherever a
//! struct is expected, at any depth, by asking the underlying deserializer for a map instead.
//!
//! (Struct variants of enums and `#[serde(flatten)]` content are not covered; no request type
//! of the gateway uses them.)

use sbd_runtime::json::JsonError;
use serde::de::{self, DeserializeOwned, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, VariantAccess, Visitor};

/// Parses `bytes` as `T`, refusing arrays where `T` (or anything inside it) expects an object;
/// an error names the JSON path of the offending value (`$.request.task.risk: ...`).
pub fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, JsonError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(Strict(&mut de)).map_err(JsonError::from_tracked)?;
    de.end().map_err(JsonError::at_root)?;
    Ok(value)
}

/// Converts an already parsed JSON value (a field the body keeps as a `Value`, such as a
/// delegation's `request`) to `T` with the same refusal of arrays where structs are expected.
pub fn from_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, JsonError> {
    serde_path_to_error::deserialize(Strict(value)).map_err(JsonError::from_tracked)
}

struct Strict<D>(D);
struct W<V>(V);
struct Seed<S>(S);

macro_rules! forward_de {
    ($($method:ident),*) => {
        $(fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
            self.0.$method(W(visitor))
        })*
    };
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Strict<D> {
    type Error = D::Error;

    forward_de!(
        deserialize_any, deserialize_bool, deserialize_i8, deserialize_i16, deserialize_i32, deserialize_i64,
        deserialize_i128, deserialize_u8, deserialize_u16, deserialize_u32, deserialize_u64, deserialize_u128,
        deserialize_f32, deserialize_f64, deserialize_char, deserialize_str, deserialize_string, deserialize_bytes,
        deserialize_byte_buf, deserialize_option, deserialize_unit, deserialize_seq, deserialize_map,
        deserialize_identifier, deserialize_ignored_any
    );

    fn deserialize_unit_struct<V: Visitor<'de>>(self, name: &'static str, visitor: V) -> Result<V::Value, Self::Error> {
        self.0.deserialize_unit_struct(name, W(visitor))
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, name: &'static str, visitor: V) -> Result<V::Value, Self::Error> {
        self.0.deserialize_newtype_struct(name, W(visitor))
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, Self::Error> {
        self.0.deserialize_tuple(len, W(visitor))
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.deserialize_tuple_struct(name, len, W(visitor))
    }

    /// The point of the adapter: a struct is read from an object only.
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.deserialize_map(W(visitor))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.deserialize_enum(name, variants, W(visitor))
    }

    fn is_human_readable(&self) -> bool {
        self.0.is_human_readable()
    }
}

macro_rules! forward_visit {
    ($($method:ident($ty:ty)),*) => {
        $(fn $method<E: de::Error>(self, v: $ty) -> Result<Self::Value, E> {
            self.0.$method(v)
        })*
    };
}

impl<'de, V: Visitor<'de>> Visitor<'de> for W<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.expecting(f)
    }

    forward_visit!(
        visit_bool(bool), visit_i8(i8), visit_i16(i16), visit_i32(i32), visit_i64(i64), visit_i128(i128),
        visit_u8(u8), visit_u16(u16), visit_u32(u32), visit_u64(u64), visit_u128(u128), visit_f32(f32),
        visit_f64(f64), visit_char(char), visit_str(&str), visit_borrowed_str(&'de str), visit_string(String),
        visit_bytes(&[u8]), visit_borrowed_bytes(&'de [u8]), visit_byte_buf(Vec<u8>)
    );

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        self.0.visit_none()
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        self.0.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.0.visit_some(Strict(d))
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.0.visit_newtype_struct(Strict(d))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        self.0.visit_seq(W(seq))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        self.0.visit_map(W(map))
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Self::Value, A::Error> {
        self.0.visit_enum(W(data))
    }
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Seed<S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.0.deserialize(Strict(d))
    }
}

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for W<A> {
    type Error = A::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, A::Error> {
        self.0.next_element_seed(Seed(seed))
    }

    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint()
    }
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for W<A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, A::Error> {
        self.0.next_key_seed(Seed(seed))
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, A::Error> {
        self.0.next_value_seed(Seed(seed))
    }

    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint()
    }
}

impl<'de, A: EnumAccess<'de>> EnumAccess<'de> for W<A> {
    type Error = A::Error;
    type Variant = W<A::Variant>;

    fn variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<(T::Value, Self::Variant), A::Error> {
        let (value, variant) = self.0.variant_seed(Seed(seed))?;
        Ok((value, W(variant)))
    }
}

impl<'de, A: VariantAccess<'de>> VariantAccess<'de> for W<A> {
    type Error = A::Error;

    fn unit_variant(self) -> Result<(), A::Error> {
        self.0.unit_variant()
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, A::Error> {
        self.0.newtype_variant_seed(Seed(seed))
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, A::Error> {
        self.0.tuple_variant(len, W(visitor))
    }

    fn struct_variant<V: Visitor<'de>>(self, fields: &'static [&'static str], visitor: V) -> Result<V::Value, A::Error> {
        self.0.struct_variant(fields, W(visitor))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::from_slice;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Amount {
        unit: String,
        amount: i64,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Req {
        name: String,
        estimate: Amount,
        #[serde(default)]
        extra: Option<Amount>,
        list: Vec<Amount>,
        tags: Vec<String>,
    }

    #[test]
    fn objects_parse_as_before() {
        let r: Req = from_slice(
            br#"{"name":"x","estimate":{"unit":"T","amount":5},"extra":{"unit":"U","amount":1},"list":[{"unit":"V","amount":2}],"tags":["a"]}"#,
        )
        .unwrap();
        assert_eq!(r.estimate, Amount { unit: "T".into(), amount: 5 });
        assert_eq!(r.extra.unwrap().amount, 1);
        assert_eq!(r.list.len(), 1);
        // Plain serde_json accepts the positional form this module refuses.
        assert!(serde_json::from_slice::<Amount>(br#"["T", 5]"#).is_ok());
    }

    #[test]
    fn arrays_where_structs_are_expected_are_refused_at_any_depth() {
        for body in [
            &br#"["x",{"unit":"T","amount":5},null,[],[]]"#[..],
            br#"{"name":"x","estimate":["T",5],"list":[],"tags":[]}"#,
            br#"{"name":"x","estimate":{"unit":"T","amount":5},"extra":["U",1],"list":[],"tags":[]}"#,
            br#"{"name":"x","estimate":{"unit":"T","amount":5},"list":[["V",2]],"tags":[]}"#,
        ] {
            assert!(from_slice::<Req>(body).is_err(), "{}", String::from_utf8_lossy(body));
        }
        assert!(from_slice::<Req>(br#"{"name":"x","estimate":{"unit":"T","amount":5},"list":[],"tags":[]} x"#).is_err());
    }
}
