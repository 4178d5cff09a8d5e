# Columns between Python and R. pybridge.columns describes arrow and numpy arrays by address:
# src/arrow_read.c copies them into R vectors in one pass, much faster than reticulate converts them
# (strings above all). Here: those vectors, hub_dataset()'s data frames made of them
# (dataset_frame()) and a data frame's columns sent back for writing (dataset_spec()), and
# columns_frame(), the data frame of a plain table pybridge returns (a dict of column arrays).

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

# ---- a plain table from Python to a data frame ---------------------------------------------------

# A table as pybridge returns it (a dict of equal-length columns: numpy arrays, lists of str) as a
# data frame with row names 1..n and no factors. `types` names the columns to take from `cols`, in
# order, with the R type of each: "character" (a list of str), "double", "integer", "logical", or
# "POSIXct" (seconds since 1970, in the session's time zone). An empty column (Python's [] is an R
# list()) gets its type too, so a frame of zero rows has the same column types as any other.
columns_frame <- function(cols, types) {
  out <- lapply(names(types), function(name) {
    x <- cols[[name]]
    switch(
      types[[name]],
      character = as.character(unlist(x)),
      double = as.numeric(x),
      integer = as.integer(x),
      logical = as.logical(x),
      POSIXct = as.POSIXct(as.numeric(x), origin = "1970-01-01"),
      stop(sprintf("Unknown column type '%s'.", types[[name]]))
    )
  })
  names(out) <- names(types)
  do.call(data.frame, c(out, stringsAsFactors = FALSE))
}

# ---- Python columns to a data frame ------------------------------------------------------------

# The columns are copied in C out of the arrow arrays that `res$held` keeps alive in Python,
# which are released as soon as they are copied.
dataset_frame <- function(res) {
  on.exit(call_python(res$held$release))
  n <- as.integer(res$num_rows)
  cols <- lapply(res$columns, dataset_column)
  names(cols) <- as.character(unlist(res$names))
  structure(cols, class = "data.frame", row.names = .set_row_names(n))
}

dataset_column <- function(spec) {
  switch(
    spec$kind,
    double = {
      if (isTRUE(spec$inexact)) {
        hfbridge_warn("precision_loss", paste0(
          "A 64-bit integer column holds values beyond 2^53 in magnitude; they were rounded to ",
          "the nearest double."))
      }
      column_vector(spec$buffers)
    },
    integer = ,
    logical = column_vector(spec$buffers),
    string = column_vector(spec$buffers, spec$keeper),
    factor = {
      x <- column_vector(spec$buffers)
      attr(x, "levels") <- as.character(unlist(spec$levels))
      class(x) <- "factor"
      x
    },
    timestamp = {
      x <- column_vector(spec$buffers)
      class(x) <- c("POSIXct", "POSIXt")
      attr(x, "tzone") <- spec$tz
      x
    },
    date = {
      x <- column_vector(spec$buffers)
      class(x) <- "Date"
      x
    },
    list = dataset_list(spec),
    struct = {
      fields <- lapply(spec$fields, dataset_column)
      names(fields) <- as.character(unlist(spec$names))
      n <- if (length(fields)) NROW(fields[[1]]) else 0L
      structure(fields, class = "data.frame", row.names = .set_row_names(n))
    },
    binary = lapply(spec$values, function(v) if (is.null(v)) NULL else v),
    null = rep(NA, as.integer(spec$length)),
    hfbridge_abort("unsupported", sprintf("Unknown column kind '%s'.", spec$kind))
  )
}

dataset_list <- function(spec) {
  if (spec$child$kind %in% c("integer", "logical", "string") ||
        (spec$child$kind == "double" && !isTRUE(spec$child$inexact))) {
    na <- if (!is.null(spec$na)) column_buffers(spec$na)
    return(.Call(hfb_arrow_list, column_buffers(spec$offsets),
                 column_buffers(spec$child$buffers), na))
  }
  child <- dataset_column(spec$child)
  offsets <- column_vector(spec$offsets)
  out <- if (is.data.frame(child)) {
    n <- length(offsets) - 1L
    f <- factor(rep.int(seq_len(n), diff(offsets)), levels = seq_len(n))
    unname(split(child, f))
  } else {
    .Call(hfb_split_rows, child, offsets, NULL, character())
  }
  if (!is.null(spec$na)) out[column_vector(spec$na)] <- list(NULL)
  out
}

# ---- a data frame to Python columns -------------------------------------------------------------

# A column of `df` (or the values of its lists, `unit` "value") as pybridge.columns decodes it.
# Text that is not UTF-8 (strings, factor levels) is refused here: reticulate would send it on as
# "<ff>" escapes.
dataset_spec <- function(x, name, unit = "row") {
  if (is.data.frame(x) || !is.null(dim(x))) {
    hfbridge_abort("invalid_argument", sprintf(paste0(
      "Column '%s' of `df` is a %s; a column holds one value per row: make its columns ",
      "columns of `df`, or make it a list column of one vector per row."), name,
      if (is.data.frame(x)) "data frame" else if (is.matrix(x)) "matrix" else "array"),
      argument = "df", column = name)
  }
  na <- if (is.list(x)) vapply(x, is.null, logical(1)) else is.na(x)
  na <- if (any(na)) as.array(na) else NULL
  if (is.factor(x)) {
    codes <- as.integer(x) - 1L
    codes[is.na(codes)] <- 0L
    return(list(kind = "factor", values = as.array(codes), na = na,
                levels = as.list(dataset_text(levels(x), name, "level"))))
  }
  if (inherits(x, "POSIXct")) {
    tz <- attr(x, "tzone")
    tz <- if (is.null(tz) || !nzchar(tz[1])) "UTC" else tz[1]
    return(list(kind = "timestamp", values = as.array(dataset_fill(unclass(x), 0)), na = na,
                tz = tz))
  }
  if (inherits(x, "Date")) {
    return(list(kind = "date", values = as.array(dataset_fill(unclass(x), 0)), na = na))
  }
  if (is.list(x) && !is.data.frame(x)) return(dataset_list_spec(x, name, na))
  kind <- if (is.integer(x)) "integer" else if (is.double(x)) "double" else if (is.logical(x))
    "logical" else if (is.character(x)) "string" else NULL
  if (is.null(kind) || !is.null(attr(x, "class"))) {
    hfbridge_abort("invalid_argument", sprintf(
      paste0("Column '%s' is %s; hub_upload_dataset() writes integer, double, logical, ",
             "character, factor, Date, POSIXct and lists of these."), name, class(x)[1]),
      argument = "df", column = name)
  }
  if (kind == "string") {
    x <- dataset_text(x, name, unit)
    return(list(kind = kind, values = as.list(dataset_fill(x, "")), na = na))
  }
  if (kind == "double") {
    # NaN is a value (a float NaN in parquet, as pandas and numpy write it); only NA is missing.
    missing <- is.na(x) & !is.nan(x)
    x[missing] <- 0
    return(list(kind = kind, values = as.array(as.vector(x)),
                na = if (any(missing)) as.array(missing) else NULL))
  }
  fill <- switch(kind, integer = 0L, logical = FALSE)
  list(kind = kind, values = as.array(dataset_fill(as.vector(x), fill)), na = na)
}

dataset_fill <- function(x, value) {
  x[is.na(x)] <- value
  x
}

# The strings of a column as UTF-8, NA kept; `unit` says where they are in the column.
dataset_text <- function(x, name, unit) {
  part <- switch(unit, row = "", level = " (its levels)", value = " (the values of its lists)")
  check_text_values(x, sprintf("Column '%s' of `df`%s", name, part), "df", unit, na_ok = TRUE,
                    column = name)
}

dataset_list_spec <- function(x, name, na) {
  dataset_check_list_type(x, name)
  lengths <- lengths(x)
  flat <- do.call(c, unname(x[lengths > 0L]))
  if (is.null(flat)) flat <- integer()
  list(kind = "list", offsets = as.array(c(0L, cumsum(as.integer(lengths)))), na = na,
       child = dataset_spec(flat, name, "value"))
}

# A list column holds one type: c() would turn list(1, "a") into c("1", "a"). Integer and double
# mix (as double, losing nothing); an empty vector or NA alone fits any type.
dataset_check_list_type <- function(x, name) {
  type_of <- function(v) {
    if (!length(v) || (is.logical(v) && all(is.na(v)))) return(NULL)
    if (!is.null(attr(v, "class"))) return(class(v)[1L])
    if (is.numeric(v)) "numeric" else typeof(v)
  }
  types <- unique(unlist(lapply(x, type_of)))
  if (length(types) > 1L) {
    hfbridge_abort("invalid_argument", sprintf(paste0(
      "Column '%s' of `df` is a list of %s; a list column holds one type: convert its ",
      "vectors first, e.g. lapply(df[[\"%s\"]], as.character)."), name,
      paste(types, collapse = " and "), name), argument = "df", column = name, types = types)
  }
}
