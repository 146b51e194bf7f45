//! Form parameters of the query protocols (and URL query strings of restJson GETs),
//! with the list conventions of the SDK's query serializer: flat `Name.N` (EC2) and
//! wrapped `Name.Member.N` (awsQuery), structures as `Name.N.Field`.

use std::collections::BTreeMap;

/// Flat key/value parameters.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Params {
    values: BTreeMap<String, String>,
}

impl Params {
    pub fn parse(body: &[u8]) -> Params {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body).unwrap_or_default();
        Params {
            values: pairs.into_iter().collect(),
        }
    }

    pub fn from_pairs(pairs: impl IntoIterator<Item = (String, String)>) -> Params {
        Params {
            values: pairs.into_iter().collect(),
        }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// Returns a non-empty value.
    pub fn non_empty(&self, name: &str) -> Option<&str> {
        self.get(name).filter(|value| !value.is_empty())
    }

    /// Returns the values of `prefix.1`, `prefix.2`, ... in index order.
    pub fn list(&self, prefix: &str) -> Vec<String> {
        let mut indexed: Vec<(u64, String)> = self
            .values
            .iter()
            .filter_map(|(key, value)| {
                let rest = key.strip_prefix(prefix)?.strip_prefix('.')?;
                let index: u64 = rest.parse().ok()?;
                Some((index, value.clone()))
            })
            .collect();
        indexed.sort_by_key(|(index, _)| *index);
        indexed.into_iter().map(|(_, value)| value).collect()
    }

    /// Returns the structures `prefix.N.*` as parameters relative to `prefix.N`, in
    /// index order.
    pub fn structs(&self, prefix: &str) -> Vec<Params> {
        let mut indexed: BTreeMap<u64, Params> = BTreeMap::new();
        for (key, value) in &self.values {
            let Some(rest) = key
                .strip_prefix(prefix)
                .and_then(|rest| rest.strip_prefix('.'))
            else {
                continue;
            };
            let Some((index, field)) = rest.split_once('.') else {
                continue;
            };
            let Ok(index) = index.parse::<u64>() else {
                continue;
            };
            indexed
                .entry(index)
                .or_default()
                .values
                .insert(field.to_string(), value.clone());
        }
        indexed.into_values().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_and_structures_follow_index_order() {
        let params = Params::parse(
            b"Action=X&Filter.2.Name=state&Filter.2.Value.1=active&Filter.1.Name=tag%3Ak&Filter.1.Value.1=v&Filter.1.Value.2=w&ResourceId.10=b&ResourceId.2=a",
        );
        assert_eq!(params.list("ResourceId"), vec!["a", "b"]);
        let filters = params.structs("Filter");
        assert_eq!(filters.len(), 2);
        assert_eq!(filters[0].get("Name"), Some("tag:k"));
        assert_eq!(filters[0].list("Value"), vec!["v", "w"]);
        assert_eq!(filters[1].list("Value"), vec!["active"]);
    }
}
