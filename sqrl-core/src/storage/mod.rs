//! S4 identity storage (SPEC 5): blocks 1, 2 and 3, rescue codes and the textual identity.
