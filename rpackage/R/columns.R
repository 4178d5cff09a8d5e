# Columns that pybridge.columns describes by address: src/columns.c copies them into R vectors
# in one pass, much faster than reticulate converts them (strings above all).

# An arrow array (pybridge.columns.buffers() says where its buffers are) as an R vector; nulls
# are NA, and a NUL in a string is written as the two characters \0.
column_vector <- function(b) {
  .Call(hfb_arrow_vector, b$type, b$length, b$offset, b$validity, b$values, b$data)
}

# The arguments of hfb_arrow_vector() as one list, for hfb_arrow_list().
column_buffers <- function(b) list(b$type, b$length, b$offset, b$validity, b$values, b$data)
