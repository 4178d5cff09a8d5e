# Chunked runs over the active future plan: embed_text(), pipeline functions and a tokenizer's
# $encode_ids() / $encode_matrix() with `parallel = TRUE` or a `chunk_size`. There is no
# pybridge module for this: each worker calls the package's own verbs, with its own Python.
#
# The leader checks the inputs, pins the model to a commit and makes sure it is cached; the
# workers get that commit and HF_HUB_OFFLINE=1, so that N workers make no Hub request. Each
# worker keeps the model it loaded (pybridge's model cache) for its later chunks.

#' Running on future workers: chunks, retries, threads and progress
#'
#' [embed_text()], the functions [pipeline()] returns, and a tokenizer's `$encode_ids()` and
#' `$encode_matrix()` run over the active [future::plan()] when called with `parallel = TRUE`
#' or a `chunk_size`: `multisession` on this machine, `cluster` on several machines, or
#' `future.batchtools` on Slurm, SGE or PBS. The inputs are cut into chunks of `chunk_size`
#' (by default about four chunks per worker) and the results come back in input order, equal
#' to what one process gives.
#'
#' * **The model**: the calling session resolves `revision` to a commit and caches the model
#'   before any worker starts. Workers load it from the same HF cache by that commit, offline
#'   (`HF_HUB_OFFLINE=1`), so they make no Hub request; each keeps it loaded for later chunks.
#'   Workers need the cache folder (`HF_HOME` or `HF_HUB_CACHE`, passed on) on a shared disk,
#'   and a Python with pybridge: the session's own (`RETICULATE_PYTHON` is passed on when the
#'   worker has none). A token is never sent to workers.
#' * **Threads**: on each worker torch uses `cores %/% workers` threads (at least 1), the cores
#'   of this machine divided by [future::nbrOfWorkers()], so that a machine is not
#'   oversubscribed. Set `options(hfbridge.threads = n)` to choose, or `NA` to keep torch's
#'   default (right for a batch scheduler, where each job has its own cores; it is the default
#'   when the plan has no fixed number of workers). Under `plan(sequential)` the threads are
#'   left alone.
#' * **Progress**: each finished chunk signals [progressr::progressor()], which shows only
#'   under `progressr::with_progress()` or `progressr::handlers(global = TRUE)`, in the console
#'   or in Shiny (`progressr::withProgressShiny()`).
#' * **Failures**: a chunk that fails (its worker died, or an error in it) is re-run up to
#'   `retry` times; a dead worker makes hfbridge set the same plan again, which starts new
#'   workers. A chunk that still fails signals `hfbridge_error_chunk_failed`, with the fields
#'   `chunk` (its number), `positions` (the first and last input positions it holds),
#'   `failed_chunks`, `attempts` and `cause` (the original condition). A run never returns a
#'   shorter result.
#'
#' A text-generation pipeline with `seed` seeds each chunk, so sampled texts differ from one
#' unchunked call. The packages future (and parallelly), and for progress progressr, must be
#' installed.
#'
#' @name hfbridge_parallel
#' @family pipelines
#' @examplesIf hfbridge:::examples_ready(c("future", "progressr"))
#' texts <- rep(c("The cat sat on the mat.", "A dog ran in the park.", "Rain fell all day."), 4)
#' future::plan(future::multisession, workers = 2)
#' progressr::with_progress(
#'   e <- embed_text(texts, "sentence-transformers/all-MiniLM-L6-v2", parallel = TRUE)
#' )
#' dim(e)
#' e <- tryCatch(embed_text(texts, "sentence-transformers/all-MiniLM-L6-v2", chunk_size = 6,
#'                          retry = 2),
#'               hfbridge_error_chunk_failed = function(e) e$positions)
#' dim(e)
#' future::plan(future::sequential)
NULL

# ---- entry points (called by the verbs) ----------------------------------------------------

parallel_wanted <- function(parallel, chunk_size) {
  check_flag(parallel, "parallel")
  parallel || !is.null(chunk_size)
}

parallel_embed <- function(texts, model, args, revision, token, quiet, chunk_size, retry) {
  row_names <- names(texts)
  texts <- check_texts(texts, "texts")
  hub_check_token(token)
  pin <- parallel_pin(model, revision, args$allow_pickle, token)
  job <- list(args = c(list(model = model, revision = pin$revision), args),
              worker = parallel_worker_setup(pin$offline, torch = TRUE))
  chunks <- parallel_chunks(length(texts), chunk_size)
  out <- parallel_run(parallel_embed_chunk, job, lapply(chunks, function(i) texts[i]), chunks,
                      retry, quiet)
  out <- if (length(out)) do.call(rbind, out) else embed_text(character(), model,
                                                               revision = pin$revision)
  rownames(out) <- row_names
  out
}

parallel_pipeline <- function(spec, inputs, args, quiet, chunk_size, retry) {
  args <- utils::modifyList(spec$defaults, pipeline_named_args(args))
  if (identical(spec$kind, "question-answering")) {
    pairs <- pipeline_qa_inputs(inputs, args)
    args$question <- NULL
    args$context <- NULL
    items <- data.frame(question = pairs$question, context = pairs$context,
                        stringsAsFactors = FALSE)
    n <- nrow(items)
    take <- function(i) items[i, , drop = FALSE]
  } else {
    items <- check_texts(inputs, "inputs")
    n <- length(items)
    take <- function(i) items[i]
  }
  pin <- parallel_pin(spec$model, spec$revision, spec$allow_pickle, NULL)
  spec$revision <- pin$revision
  spec$defaults <- list()
  job <- list(spec = spec, args = args, worker = parallel_worker_setup(pin$offline, torch = TRUE))
  chunks <- parallel_chunks(n, chunk_size)
  parts <- parallel_run(parallel_pipeline_chunk, job, lapply(chunks, take), chunks, retry, quiet)
  if (identical(spec$kind, "feature-extraction")) return(do.call(c, parts))
  for (k in seq_along(parts)) {
    if (!is.null(parts[[k]]$text_id)) parts[[k]]$text_id <- parts[[k]]$text_id + chunks[[k]][1] - 1L
    if (!is.null(parts[[k]]$audio_id)) {  # speech (audio.R): files of a chunk
      parts[[k]]$audio_id <- parts[[k]]$audio_id + chunks[[k]][1] - 1L
    }
  }
  out <- do.call(rbind, parts)
  rownames(out) <- NULL
  out
}

parallel_encode <- function(tok, method, args, chunk_size, retry, quiet = FALSE) {
  # The worker's own method checks the texts and its padding limit again.
  rest <- args[setdiff(names(args), c("texts", "pairs", "max_padding_bytes"))]
  chunks <- parallel_chunks(length(args$texts), chunk_size)
  if (!length(chunks)) {  # no texts: one process's empty result (list(), 0 x 0 matrices)
    return(do.call(tok[[method]], c(list(args$texts, args$pairs), rest)))
  }
  json <- tempfile(fileext = ".json")
  on.exit(unlink(json))
  tok$save(json, pretty = FALSE)
  job <- list(method = method, args = rest,
              tokenizer = paste(readLines(json, encoding = "UTF-8", warn = FALSE),
                                collapse = "\n"),
              key = unname(tools::md5sum(json)),
              worker = parallel_worker_setup(offline = FALSE, torch = FALSE))
  inputs <- lapply(chunks, function(i) list(texts = args$texts[i], pairs = args$pairs[i]))
  parts <- parallel_run(parallel_encode_chunk, job, inputs, chunks, retry, quiet)
  if (method == "encode_ids") return(parallel_pad_ids(do.call(c, parts), tok$padding))
  parallel_bind_matrices(parts, tok$padding)
}

# ---- the leader ----------------------------------------------------------------------------

parallel_need <- function() {
  if (!requireNamespace("future", quietly = TRUE)) {
    hfbridge_abort("unsupported", paste(
      "parallel = TRUE and chunk_size need the future package: install it",
      "(Debian: apt-get install r-cran-future), then choose a plan such as",
      "future::plan(future::multisession, workers = 2)."), argument = "parallel")
  }
}

# The commit the workers load, cached before they start. A local folder needs no pin. The
# cache is tried offline first, so that a commit already cached costs no request.
parallel_pin <- function(model, revision, allow_pickle, token) {
  parallel_need()
  if (dir.exists(path.expand(model))) return(list(revision = revision, offline = FALSE))
  offline <- toupper(Sys.getenv("HF_HUB_OFFLINE")) %in% c("1", "ON", "YES", "TRUE")
  is_commit <- grepl("^[0-9a-f]{40}$", revision)
  commit <- if (is_commit || offline) revision else hub_repo_info(model, revision,
                                                                   token = token)$sha
  cached <- function(env) {
    py_call("models", "folder", model, revision = commit, allow_pickle = allow_pickle,
            env = env, token = token)
  }
  offline_env <- utils::modifyList(hf_env(), list(HF_HUB_OFFLINE = "1"))
  found <- tryCatch(cached(offline_env), hfbridge_error = function(e) NULL)
  if (is.null(found)) cached(hf_env())
  list(revision = commit, offline = TRUE)
}

# What every worker needs besides its chunk: the leader's HF_* variables without the token
# (unset ones stay unset on the worker), the Python to start, and torch's threads.
parallel_worker_setup <- function(offline, torch) {
  env <- Sys.getenv(hf_env_names, unset = NA_character_)
  env[c("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")] <- NA_character_
  if (offline) env[["HF_HUB_OFFLINE"]] <- "1"
  python <- if (reticulate::py_available(initialize = FALSE)) reticulate::py_config()$python
            else Sys.getenv("RETICULATE_PYTHON")
  list(env = env, python = python, threads = if (torch) parallel_threads() else NA_integer_)
}

# cores %/% workers, or the option hfbridge.threads; NA leaves torch alone.
parallel_threads <- function() {
  chosen <- getOption("hfbridge.threads")
  if (!is.null(chosen)) {
    if (length(chosen) == 1L && is.na(chosen)) return(NA_integer_)
    return(check_count(chosen, "hfbridge.threads", 1L))
  }
  strategy <- future::plan("next")
  if (inherits(strategy, "sequential") || inherits(strategy, "batchtools")) return(NA_integer_)
  workers <- future::nbrOfWorkers()
  if (!is.finite(workers)) return(NA_integer_)
  max(1L, as.integer(parallelly::availableCores() %/% workers))
}

# Input positions per chunk; by default about four chunks per worker, or one per batchtools
# job (each job is a new process that loads the model again).
parallel_chunks <- function(n, chunk_size) {
  parallel_need()
  if (is.null(chunk_size)) {
    workers <- future::nbrOfWorkers()
    if (!is.finite(workers)) workers <- 4L
    per_worker <- if (inherits(future::plan("next"), "batchtools")) 1L else 4L
    chunk_size <- max(1L, ceiling(n / (per_worker * workers)))
  }
  chunk_size <- check_count(chunk_size, "chunk_size", 1L)
  if (n == 0L) return(list())
  starts <- seq(1L, n, by = chunk_size)
  lapply(starts, function(s) seq.int(s, min(n, s + chunk_size - 1L)))
}

# Runs run_chunk(job, inputs[[k]]) for every chunk on the plan's workers, in rounds: a round
# launches the pending chunks and collects them. A dead worker stops the launches of the round
# and makes the plan start again (future 1.31 does not replace a dead worker). Chunks that
# failed run again up to `retry` times; then hfbridge_error_chunk_failed.
parallel_run <- function(run_chunk, job, inputs, chunks, retry, quiet) {
  retry <- check_count(retry, "retry", 0L)
  n <- length(inputs)
  results <- vector("list", n)
  done <- logical(n)
  attempts <- integer(n)
  causes <- vector("list", n)
  progress <- parallel_progressor(n, quiet)
  while (!all(done)) {
    pending <- which(!done)
    running <- list()
    broken <- FALSE
    for (k in pending) {
      f <- tryCatch(parallel_launch(run_chunk, job, inputs[[k]], k, progress),
                    FutureError = function(e) e)
      if (inherits(f, "error")) {
        # A launch fails on a dead worker, whose own chunk reports it below. Only a round
        # that launches nothing counts it against the chunk, so that a plan that cannot start
        # workers ends.
        broken <- TRUE
        if (!length(running)) {
          attempts[k] <- attempts[k] + 1L
          causes[[k]] <- f
        }
        break
      }
      running[[as.character(k)]] <- f
    }
    for (key in names(running)) {
      k <- as.integer(key)
      value <- tryCatch(future::value(running[[key]]), error = function(e) e)
      if (inherits(value, "error")) {
        attempts[k] <- attempts[k] + 1L
        causes[[k]] <- value
        broken <- broken || inherits(value, "FutureError")
      } else {
        results[[k]] <- value
        done[k] <- TRUE
      }
    }
    if (broken) parallel_restart_plan()
    failed <- which(!done & attempts > retry)
    if (length(failed)) parallel_chunk_failed(failed, chunks, attempts, causes)
  }
  results
}

# Setting the plan again starts new workers in place of the dead one (and of the others).
parallel_restart_plan <- function() {
  strategy <- future::plan("list")
  future::plan(strategy)
}

parallel_launch <- function(run_chunk, job, input, k, progress) {
  future::future(
    quote(parallel_worker(run_chunk, job, input, k, progress)), substitute = FALSE,
    globals = list(parallel_worker = parallel_worker, run_chunk = run_chunk, job = job,
                   input = input, k = k, progress = progress),
    packages = "hfbridge", seed = NULL, lazy = FALSE)
}

parallel_progressor <- function(n, quiet) {
  if (quiet || !requireNamespace("progressr", quietly = TRUE)) return(function(...) NULL)
  progressr::progressor(steps = n)
}

parallel_chunk_failed <- function(failed, chunks, attempts, causes) {
  k <- failed[1]
  cause <- causes[[k]]
  range <- range(chunks[[k]])
  others <- if (length(failed) > 1L) sprintf(" (%d chunks failed in all: %s)", length(failed),
                                              format_positions(failed)) else ""
  hfbridge_abort("chunk_failed", sprintf(paste0(
    "Chunk %d of %d (inputs %d to %d) failed after %d attempt%s%s: %s\n",
    "Re-run with retry = n to run failed chunks again, or run those inputs alone to see why."),
    k, length(chunks), range[1], range[2], attempts[k], if (attempts[k] > 1L) "s" else "",
    others, conditionMessage(cause)), chunk = k, positions = range, failed_chunks = failed,
    attempts = attempts[k], cause = cause)
}

# ---- the workers ---------------------------------------------------------------------------

# On a worker (or in this session under plan(sequential)): the leader's HF_* variables, its
# Python when the worker has none, and torch's threads, all restored after the chunk.
parallel_worker <- function(run_chunk, job, input, k, progress) {
  parallel_test_fault(k)
  setup <- job$worker
  if (!reticulate::py_available(initialize = FALSE) && !nzchar(Sys.getenv("RETICULATE_PYTHON")) &&
      nzchar(setup$python) && file.exists(setup$python)) {
    Sys.setenv(RETICULATE_PYTHON = setup$python)
  }
  old <- Sys.getenv(names(setup$env), unset = NA_character_)
  on.exit(parallel_set_env(old), add = TRUE)
  parallel_set_env(setup$env)
  if (!is.na(setup$threads)) {
    before <- py_call("models", "set_threads", setup$threads)
    on.exit(py_call("models", "set_threads", before), add = TRUE)
  }
  out <- run_chunk(job, input)
  progress()
  out
}

parallel_set_env <- function(env) {
  set <- env[!is.na(env)]
  if (length(set)) do.call(Sys.setenv, as.list(set))
  Sys.unsetenv(names(env)[is.na(env)])
}

# For the tests only: HFBRIDGE_TEST_KILL_CHUNK names a file holding a chunk number; the worker
# that gets that chunk removes the file and kills its own process (once): at once, or with
# "<chunk> mid" when its model starts on the chunk's second batch, after writing `<file>.killed`.
parallel_test_fault <- function(k) {
  path <- Sys.getenv("HFBRIDGE_TEST_KILL_CHUNK")
  if (!nzchar(path) || !file.exists(path)) return(invisible())
  order <- strsplit(readLines(path, warn = FALSE)[1], " ", fixed = TRUE)[[1]]
  if (!identical(as.integer(order[1]), k) || !file.remove(path)) return(invisible())
  if (!identical(order[2], "mid")) return(tools::pskill(Sys.getpid(), tools::SIGKILL))
  # A forward pre-hook on every torch module: the first module called is the model itself.
  reticulate::py_run_string(sprintf(paste(sep = "\n",
    "import os, signal, torch", "_seen = []", "def _kill_in_second_batch(module, args):",
    "    if not _seen or module is _seen[0]:", "        _seen.append(module)",
    "    if len(_seen) == 2:", "        open(%s, 'w').write('killed in batch 2')",
    "        os.kill(os.getpid(), signal.SIGKILL)",
    "torch.nn.modules.module.register_module_forward_pre_hook(_kill_in_second_batch)"),
    shQuote(paste0(path, ".killed"))))
}

parallel_embed_chunk <- function(job, input) {
  do.call(embed_text, c(list(input), job$args, list(quiet = TRUE)))
}

parallel_pipeline_chunk <- function(job, input) {
  pipeline_call(job$spec, input, job$args, quiet = TRUE)
}

# A worker rebuilds the tokenizer from its JSON once, and keeps it for later chunks.
parallel_encode_chunk <- function(job, input) {
  if (is.null(.hfb$parallel_tokenizers)) .hfb$parallel_tokenizers <- new.env(parent = emptyenv())
  tok <- .hfb$parallel_tokenizers[[job$key]]
  if (is.null(tok)) {
    tok <- tokenizer$new(py_call("tokenizer", "from_str", job$tokenizer))
    assign(job$key, tok, envir = .hfb$parallel_tokenizers)
  }
  do.call(tok[[job$method]], c(list(input$texts, input$pairs), job$args))
}

# Chunks of $encode_matrix() padded to the widest, as one call pads: on the tokenizer's
# padding side, with its pad id and pad type id (0, 0 and right when padding is off).
parallel_bind_matrices <- function(parts, padding) {
  pad <- list(ids = padding$pad_id %||% 0L, attention_mask = 0L,
              type_ids = padding$pad_type_id %||% 0L)
  left <- identical(padding$direction, "left")
  width <- max(vapply(parts, function(p) ncol(p$ids), integer(1)))
  out <- lapply(names(pad), function(name) {
    do.call(rbind, lapply(parts, function(p) {
      m <- p[[name]]
      extra <- matrix(as.integer(pad[[name]]), nrow(m), width - ncol(m))
      if (left) cbind(extra, m) else cbind(m, extra)
    }))
  })
  names(out) <- names(pad)
  out
}

# With padding on (and no fixed length), one call pads every text to the longest of all; the
# chunks padded each to their own longest.
parallel_pad_ids <- function(ids, padding) {
  if (is.null(padding) || !is.null(padding$length) || !length(ids)) return(ids)
  width <- max(lengths(ids))
  left <- identical(padding$direction, "left")
  lapply(ids, function(x) {
    extra <- rep(as.integer(padding$pad_id), width - length(x))
    if (left) c(extra, x) else c(x, extra)
  })
}

`%||%` <- function(x, y) if (is.null(x)) y else x
