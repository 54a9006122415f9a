//! Rows: [`ToRow`] for what the sink writes and [`FromRow`] for what the source reads.

use postgres::Row;
use postgres::types::{FromSqlOwned, ToSql};

/// A value the sink writes as one row: its fields in the order of the sink's columns.
///
/// Implemented for tuples of up to 8 fields of any type with [`ToSql`] (`(i64, String)`
/// writes two columns); implement it for a struct of your own to write its fields.
/// `with_values` lends the fields without copying them or allocating.
///
/// ```
/// use bwx_postgres::ToRow;
/// use postgres::types::ToSql;
///
/// #[derive(Clone, serde::Serialize, serde::Deserialize)]
/// struct Reading { sensor: String, value: f64 }
///
/// impl ToRow for Reading {
///     fn with_values<R>(&self, f: impl FnOnce(&[&(dyn ToSql + Sync)]) -> R) -> R {
///         f(&[&self.sensor, &self.value])
///     }
/// }
/// ```
pub trait ToRow {
    /// Calls `f` with the row's values, one per column.
    fn with_values<R>(&self, f: impl FnOnce(&[&(dyn ToSql + Sync)]) -> R) -> R;
}

/// A value the source reads from one row: its fields in the order of the source's columns.
///
/// Implemented for tuples of up to 8 fields of any owned type with `FromSql` (`(i64,
/// String)` reads two columns); implement it for a struct of your own.
pub trait FromRow: Sized {
    /// Reads the value from `row`, whose columns start at index `first`.
    fn from_row(row: &Row, first: usize) -> Result<Self, postgres::Error>;
}

macro_rules! tuple_rows {
    ($($name:ident $index:tt),+) => {
        impl<$($name: ToSql + Sync),+> ToRow for ($($name,)+) {
            fn with_values<R>(&self, f: impl FnOnce(&[&(dyn ToSql + Sync)]) -> R) -> R {
                f(&[$(&self.$index),+])
            }
        }

        impl<$($name: FromSqlOwned),+> FromRow for ($($name,)+) {
            fn from_row(row: &Row, first: usize) -> Result<Self, postgres::Error> {
                Ok(($(row.try_get::<_, $name>(first + $index)?,)+))
            }
        }
    };
}

tuple_rows!(A 0);
tuple_rows!(A 0, B 1);
tuple_rows!(A 0, B 1, C 2);
tuple_rows!(A 0, B 1, C 2, D 3);
tuple_rows!(A 0, B 1, C 2, D 3, E 4);
tuple_rows!(A 0, B 1, C 2, D 3, E 4, F 5);
tuple_rows!(A 0, B 1, C 2, D 3, E 4, F 5, G 6);
tuple_rows!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7);
