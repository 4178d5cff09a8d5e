# Columns that pybridge.columns describes by address: src/columns.c copies them into R vectors
# in one pass, much faster than reticulate converts them (strings above all).

# An arrow array (pybridge.columns.buffers() says where its buffers are) as an R vector; nulls
# are NA, and a NUL in a string is written as the two characters \0. Strings with a `keeper`
# (the Python object holding their array) are read lazily, element by element, as R asks for
# them (src/lazy_strings.c); the vector keeps the keeper.
column_vector <- function(b, keeper = NULL) {
  .Call(hfb_arrow_vector, b$type, b$length, b$offset, b$validity, b$values, b$data, keeper)
}

# The arguments of hfb_arrow_vector() as one list, for hfb_arrow_list().
column_buffers <- function(b) list(b$type, b$length, b$offset, b$validity, b$values, b$data)

# An int32 or float64 numpy array (pybridge.columns.view()) as an integer or double vector that
# reads it in place (src/views.c), keeping `keeper`, the Python object that holds it, alive.
column_view <- function(v, keeper) {
  .Call(hfb_buffer_view, v$type, v$address, as.double(v$length), keeper)
}
