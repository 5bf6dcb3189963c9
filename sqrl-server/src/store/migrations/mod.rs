//! The schema of each SQL backend, as ordered lists of migrations with the
//! same versions and names in both dialects.

pub mod postgres;
pub mod sqlite;

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use crate::store::AttemptState;

    /// The quoted names of every `state … IN (…)` list in `sql`.
    fn state_lists(sql: &str) -> Vec<Vec<String>> {
        let mut lists = Vec::new();
        let mut rest = sql;
        while let Some(at) = rest
            .find("state NOT IN (")
            .or_else(|| rest.find("state IN ("))
        {
            let open = at + rest[at..].find('(').unwrap() + 1;
            let close = open + rest[open..].find(')').unwrap();
            lists.push(
                rest[open..close]
                    .split(',')
                    .map(|name| name.trim().trim_matches('\'').to_owned())
                    .collect(),
            );
            rest = &rest[close..];
        }
        lists
    }

    #[test]
    fn both_dialects_check_exactly_the_attempt_states() {
        let expected: Vec<String> = AttemptState::ALL
            .iter()
            .map(|state| state.as_str().to_owned())
            .collect();
        // (SQLite keeps attempts in memory since migration 5, as the
        // `AttemptState` type itself; its older migrations still check.)
        for (dialect, migrations) in [
            ("sqlite", super::sqlite::MIGRATIONS.to_vec()),
            ("postgres", super::postgres::MIGRATIONS.to_vec()),
        ] {
            let lists: Vec<_> = migrations
                .iter()
                .flat_map(|(_, _, sql)| state_lists(sql))
                .collect();
            assert!(!lists.is_empty(), "{dialect} checks the states");
            for list in lists {
                assert_eq!(list, expected, "{dialect}");
            }
        }
    }

    #[test]
    fn both_dialects_have_the_same_versions() {
        let names = |m: &[(i64, &str, &str)]| -> Vec<(i64, String)> {
            m.iter().map(|(v, n, _)| (*v, (*n).to_owned())).collect()
        };
        assert_eq!(
            names(super::sqlite::MIGRATIONS),
            names(super::postgres::MIGRATIONS)
        );
    }
}
