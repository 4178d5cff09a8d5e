# Shiny apps: models loaded once per process at start-up (hfbridge_preload), long calls run in
# persistent background R sessions that hold the same models (hfbridge_async), and the example
# app (run_example_app).
#
# Why callr sessions and not future: reticulate holds the GIL in the main R process, so a model
# call must run in another process. future's multisession workers would do, but future() itself
# blocks the main process while every worker is busy, and each worker loads its models on its
# first call. A callr::r_session stays alive, holds the models loaded by hfbridge_preload(), and
# $call() never blocks: jobs wait in a queue here, and later polls the sessions.

#' Load models once, at start-up, in this process and in background workers
#'
#' Call it at the top of a Shiny app (outside `server`), so that models load when the app
#' starts and not on the first click. Each model is loaded in this R process and, with
#' `workers > 0`, in that many background R sessions, which [hfbridge_async()] then uses: a
#' long model call there does not block the other users of the app.
#'
#' @param pipeline Pipelines to load: a character vector of tasks (each with its default model),
#'   or a list whose elements are a task or a list of [pipeline()] arguments
#'   (`list("sentiment-analysis", model = "distilbert/...")`). Names name the result.
#' @param embed Repo ids (or folders) of models for [embed_text()].
#' @param tokenizer Repo ids (or folders) of tokenizers.
#' @param workers Background R sessions to start, each with the same models. `0` loads the
#'   models only here, and [hfbridge_async()] then runs its calls in this process.
#' @param quiet If `FALSE`, say what is loaded.
#' @return Invisibly, a list: `pipelines` (the loaded pipeline functions), `tokenizers`,
#'   `embed` (the embedding models), `workers` (how many run) and `seconds` (the time taken).
#' @family apps
#' @export
#' @examplesIf hfbridge:::examples_ready()
#' models <- hfbridge_preload(
#'   pipeline = list(sentiment = "sentiment-analysis"),
#'   embed = "sentence-transformers/all-MiniLM-L6-v2",
#'   tokenizer = "sentence-transformers/all-MiniLM-L6-v2"
#' )
#' models$pipelines$sentiment("I love this.")
#' models$seconds
hfbridge_preload <- function(pipeline = NULL, embed = NULL, tokenizer = NULL, workers = 0L,
                             quiet = TRUE) {
  started <- Sys.time()
  spec <- list(pipeline = apps_pipeline_specs(pipeline),
               embed = apps_model_ids(embed, "embed"),
               tokenizer = apps_model_ids(tokenizer, "tokenizer"))
  workers <- check_count(workers, "workers", 0L)
  quiet <- check_flag(quiet, "quiet")
  if (workers > 0L) apps_need(c("promises", "later", "callr"))
  apps_workers_start(workers, spec)  # they load while this process loads
  loaded <- apps_preload_here(spec, quiet)
  apps_workers_wait()
  loaded$workers <- apps_workers_count()
  loaded$seconds <- as.numeric(difftime(Sys.time(), started, units = "secs"))
  invisible(loaded)
}

#' Run a model call in a background worker and get a promise of its result
#'
#' Sends `fun(...)` to an idle background R session started by [hfbridge_preload()] (calls wait
#' in a queue while every worker is busy) and returns a [promises::promise()] at once: the R
#' process, and with it every other user of a Shiny app, goes on meanwhile. With no workers,
#' `fun(...)` runs here (what [shiny::testServer()] tests use).
#'
#' `fun` runs in another R process: it sees its arguments and packages, not the variables
#' around it (refer to functions as `hfbridge::embed_text`). The `HF_*` variables of this
#' process are set there for the call. A failure rejects the promise with the same classed
#' condition (`hfbridge_error_*`) the call signals here; a worker that dies is restarted. Inside
#' `fun`, [hfbridge_async_progress()] reports progress to `progress`.
#'
#' @param fun A function.
#' @param ... Its arguments.
#' @param progress `NULL`, or `function(value, detail)` called here with what `fun` reports
#'   through [hfbridge_async_progress()] (for example the `set()` method of a
#'   [shiny::Progress]).
#' @return A promise of `fun(...)`'s value.
#' @family apps
#' @export
#' @examplesIf hfbridge:::examples_ready(c("promises", "later", "callr"))
#' library(promises)
#' hfbridge_preload(embed = "sentence-transformers/all-MiniLM-L6-v2", workers = 1)
#' p <- hfbridge_async(hfbridge::embed_text, c("a text", "another"),
#'                     "sentence-transformers/all-MiniLM-L6-v2", quiet = TRUE)
#' p %...>% dim() %...>% print()
#' # A Shiny app's event loop runs the promise; in a script, run the loop until it is done:
#' while (!later::loop_empty()) later::run_now(0.1)
#' hfbridge_workers_stop()
hfbridge_async <- function(fun, ..., progress = NULL) {
  if (!is.function(fun)) {
    hfbridge_abort("invalid_argument", "`fun` must be a function, e.g. hfbridge::embed_text.",
                   argument = "fun")
  }
  if (!is.null(progress) && !is.function(progress)) {
    hfbridge_abort("invalid_argument", "`progress` must be NULL or function(value, detail).",
                   argument = "progress")
  }
  apps_need(c("promises", "later", "callr"))
  if (!isNamespace(environment(fun))) environment(fun) <- globalenv()
  job <- list(fun = fun, args = list(...), env = hf_env(), progress = progress)
  promises::promise(function(resolve, reject) {
    job$resolve <- resolve
    job$reject <- reject
    if (apps_workers_count() == 0L) return(apps_run_here(job))
    .hfb$pool$queue <- c(.hfb$pool$queue, list(job))
    apps_dispatch()
  })
}

#' Report progress from inside a function run by hfbridge_async()
#'
#' @param value A number, the `value` given to the `progress` callback of [hfbridge_async()]
#'   (for a [shiny::Progress], between its `min` and `max`).
#' @param detail A short text, or `NULL`.
#' @return `NULL`, invisibly. Outside [hfbridge_async()] it does nothing.
#' @family apps
#' @export
#' @examples
#' hfbridge_async_progress(0.5, "half way")
hfbridge_async_progress <- function(value, detail = NULL) {
  cond <- structure(list(message = "hfbridge progress", call = NULL, value = value,
                         detail = detail),
                    class = c("hfbridge_progress", "callr_message", "condition"))
  signalCondition(cond)
  invisible(NULL)
}

#' Stop the background workers of hfbridge_preload()
#'
#' @return The number of workers stopped, invisibly.
#' @family apps
#' @export
#' @examples
#' hfbridge_workers_stop()
hfbridge_workers_stop <- function() {
  pool <- .hfb$pool
  if (is.null(pool)) return(invisible(0L))
  n <- length(pool$workers)
  for (w in pool$workers) try(w$session$close(grace = 0.5), silent = TRUE)
  .hfb$pool <- NULL
  invisible(n)
}

#' Run hfbridge's example Shiny app
#'
#' Five tabs: **Sentiment** (a table and a bar plot of [pipeline()]'s labels and scores for the
#' texts you type), **Semantic search** (the top-k documents of a bundled corpus by cosine
#' similarity of [embed_text()] embeddings, computed once; you can add many documents, embedded
#' in a background worker with a progress bar), **Tokens** (a text's tokens highlighted at
#' their offsets, with their ids), **Chat** (a conversation with `chat_model`, the reply
#' streaming into the page as it is generated) and **Image search** (the bundled images nearest
#' to a text, by cosine similarity of `clip_model`'s [embed_image()] and [embed_text()]
#' features; the images are embedded once). Models load once at start-up with
#' [hfbridge_preload()]; long calls run through [hfbridge_async()].
#'
#' With `server = TRUE` the app starts one [hf_serve()] process with its sentiment and
#' embedding models, and the workers send their calls there through [hf_inference()] instead
#' of each holding a copy of the models: the results are the same, and the models are in memory
#' once. The chat model is always served that way: each session's chat runs [hf_chat()] on the
#' server in a background R process of its own, which keeps the session's turns and streams the
#' reply chunk by chunk. The server stops with the app.
#'
#' The app is in `system.file("apps", "hfbridge-demo", package = "hfbridge")`; it reads its
#' settings from the options `hfbridge.app.sentiment_model`, `hfbridge.app.embed_model`,
#' `hfbridge.app.tokenizer`, `hfbridge.app.workers`, `hfbridge.app.server`,
#' `hfbridge.app.chat_model`, `hfbridge.app.chat_max_tokens` and `hfbridge.app.clip_model` (or
#' the variables `HFBRIDGE_SENTIMENT_MODEL`, `HFBRIDGE_EMBED_MODEL`, `HFBRIDGE_TOKENIZER`,
#' `HFBRIDGE_WORKERS`, `HFBRIDGE_SERVER` (`true` or `1`), `HFBRIDGE_CHAT_MODEL`,
#' `HFBRIDGE_CHAT_MAX_TOKENS`, 256 by default, and `HFBRIDGE_CLIP_MODEL`); this function sets
#' the options from its arguments.
#'
#' @param sentiment_model A text-classification model; `NULL` takes the task's default.
#' @param embed_model A sentence-embedding model.
#' @param tokenizer The tokenizer shown in the Tokens tab (by default `embed_model`'s).
#' @param workers Background R sessions for long calls (see [hfbridge_preload()]).
#' @param server If `TRUE`, the sentiment and embedding models run in one [hf_serve()] process
#'   that every worker sends its calls to; `NULL` reads `HFBRIDGE_SERVER` (off by default).
#' @param chat_model A chat model (a Hub repo id or a folder, with a chat template) for the Chat
#'   tab; `NULL` reads `HFBRIDGE_CHAT_MODEL`, and without it the tab shows a note.
#' @param clip_model An image-text model such as CLIP for the Image search tab (the workers
#'   hold it for the queries, also with `server = TRUE`); `NULL` reads `HFBRIDGE_CLIP_MODEL`,
#'   and without it the tab shows a note.
#' @param port,host,launch.browser Passed to [shiny::runApp()].
#' @return What [shiny::runApp()] returns, when the app stops.
#' @family apps
#' @export
#' @examplesIf hfbridge:::examples_ready()
#' # The app runs until it is stopped: start it from an interactive session.
#' if (interactive()) {
#'   run_example_app()
#'   run_example_app(embed_model = "sentence-transformers/all-MiniLM-L6-v2", port = 7860)
#'   run_example_app(server = TRUE, chat_model = "hfbridge-tiny/chat")
#'   run_example_app(clip_model = "hfbridge-tiny/clip")
#' }
run_example_app <- function(sentiment_model = NULL,
                            embed_model = "sentence-transformers/all-MiniLM-L6-v2",
                            tokenizer = embed_model, workers = 2L, server = NULL,
                            chat_model = NULL, clip_model = NULL,
                            port = getOption("shiny.port"), host = getOption("shiny.host",
                                                                             "127.0.0.1"),
                            launch.browser = interactive()) { # nolint: object_name_linter.
  if (!is.null(sentiment_model)) check_string(sentiment_model, "sentiment_model")
  check_string(embed_model, "embed_model")
  check_string(tokenizer, "tokenizer")
  workers <- check_count(workers, "workers", 0L)
  if (!is.null(server)) check_flag(server, "server")
  if (!is.null(chat_model)) check_string(chat_model, "chat_model")
  if (!is.null(clip_model)) check_string(clip_model, "clip_model")
  check_host(host)
  if (!is.null(port)) check_port(port)
  apps_need(c("shiny", "promises", "later", "callr"))
  old <- options(hfbridge.app.sentiment_model = sentiment_model,
                 hfbridge.app.embed_model = embed_model, hfbridge.app.tokenizer = tokenizer,
                 hfbridge.app.workers = workers, hfbridge.app.server = server,
                 hfbridge.app.chat_model = chat_model, hfbridge.app.clip_model = clip_model)
  on.exit(options(old), add = TRUE)
  shiny::runApp(example_app_dir(), port = port, host = host, launch.browser = launch.browser)
}

example_app_dir <- function() system.file("apps", "hfbridge-demo", package = "hfbridge")

# ---- preloading ----------------------------------------------------------------------------

apps_model_ids <- function(x, arg) {
  if (is.null(x)) return(character(0))
  vapply(as.list(x), check_string, character(1), arg = arg)
}

# Each pipeline as a list of pipeline() arguments, named.
apps_pipeline_specs <- function(x) {
  if (is.null(x)) return(list())
  specs <- lapply(as.list(x), function(p) {
    if (!is.list(p)) p <- list(task = p)
    keys <- if (is.null(names(p))) rep("", length(p)) else names(p)
    unnamed <- which(!nzchar(keys))
    if (length(unnamed)) keys[unnamed[1]] <- "task"
    names(p) <- keys
    if (is.null(p$task)) {
      hfbridge_abort("invalid_argument",
                     "Each `pipeline` needs a task, e.g. \"sentiment-analysis\".",
                     argument = "pipeline")
    }
    check_string(p$task, "pipeline")
    p
  })
  keys <- names(specs)
  if (is.null(keys)) keys <- rep("", length(specs))
  keys[!nzchar(keys)] <- vapply(specs[!nzchar(keys)], function(p) p$task, character(1))
  names(specs) <- keys
  specs
}

# Loads (and runs once, which warms torch) every model of `spec` in this process.
apps_preload_here <- function(spec, quiet = TRUE) {
  say <- function(...) if (!quiet) message(...)
  pipelines <- lapply(spec$pipeline, function(p) {
    say("Loading the ", p$task, " pipeline")
    f <- do.call(pipeline, c(p, list(quiet = TRUE)))
    f("Warm-up.", quiet = TRUE)
    f
  })
  for (model in spec$embed) {
    say("Loading ", model, " for embeddings")
    embed_text("Warm-up.", model, quiet = TRUE)
  }
  tokenizers <- lapply(structure(spec$tokenizer, names = spec$tokenizer), function(id) {
    say("Loading the tokenizer of ", id)
    tokenizer_from_pretrained(id)
  })
  list(pipelines = pipelines, tokenizers = tokenizers, embed = spec$embed)
}

# ---- the worker pool: callr sessions, a queue, and later polling them ----------------------

apps_workers_count <- function() length(.hfb$pool$workers)

apps_workers_start <- function(n, spec) {
  hfbridge_workers_stop()
  if (n == 0L) return(invisible())
  .hfb$pool <- new.env(parent = emptyenv())
  .hfb$pool$spec <- spec
  .hfb$pool$queue <- list()
  .hfb$pool$workers <- lapply(seq_len(n), function(i) apps_worker_new(spec))
  invisible()
}

# A session that starts loading the models at once ($call does not wait).
apps_worker_new <- function(spec) {
  log <- tempfile("hfbridge-worker-", fileext = ".log")
  options <- callr::r_session_options(stdout = log, stderr = "2>&1", supervise = TRUE)
  session <- callr::r_session$new(options, wait = TRUE)
  session$call(apps_worker_preload, list(spec, hf_env()))
  worker <- new.env(parent = emptyenv())
  worker$session <- session
  worker$job <- NULL
  worker$loading <- TRUE
  worker$log <- log
  worker
}

# What a worker runs, with the HF_* variables of the app's process set for each call. callr
# runs a function in the worker's global environment, hence asNamespace().
apps_worker_preload <- function(spec, env) {
  if (length(env)) do.call(Sys.setenv, env)
  asNamespace("hfbridge")$apps_preload_here(spec)
  invisible(TRUE)
}

apps_worker_run <- function(fun, args, env) {
  if (length(env)) do.call(Sys.setenv, env)
  do.call(fun, args)
}

# Blocks until every worker has loaded its models (at start-up only).
apps_workers_wait <- function() {
  for (w in .hfb$pool$workers) {
    while (isTRUE(w$loading)) {
      w$session$poll_process(1000)
      res <- apps_worker_read(w)
      if (!is.null(res$error)) {
        msg <- conditionMessage(apps_job_error(res$error))
        hfbridge_workers_stop()
        hfbridge_abort("python_environment", paste("A background worker could not load the",
                                                   "models:", msg))
      }
    }
  }
  invisible()
}

# Reads what a session has to say; returns the final message of a call (or NULL).
apps_worker_read <- function(w) {
  if (w$session$poll_process(0) != "ready") return(NULL)
  res <- w$session$read()
  if (is.null(res)) return(NULL)
  if (res$code == 301L) {
    msg <- res$message
    if (inherits(msg, "hfbridge_progress") && is.function(w$job$progress)) {
      try(w$job$progress(msg$value, msg$detail), silent = TRUE)
    }
    return(NULL)
  }
  if (isTRUE(w$loading) && res$code %in% c(200L, 500L, 501L)) w$loading <- FALSE
  res
}

apps_dispatch <- function() {
  pool <- .hfb$pool
  if (is.null(pool)) return(invisible())
  for (w in pool$workers) {
    if (!length(pool$queue)) break
    if (!is.null(w$job) || isTRUE(w$loading)) next
    w$job <- pool$queue[[1]]
    pool$queue <- pool$queue[-1]
    w$session$call(apps_worker_run, list(w$job$fun, w$job$args, w$job$env))
  }
  if (!isTRUE(pool$polling) && apps_pool_active()) {
    pool$polling <- TRUE
    later::later(apps_poll, 0.05)
  }
  invisible()
}

apps_pool_active <- function() {
  pool <- .hfb$pool
  !is.null(pool) && (length(pool$queue) > 0L ||
                       any(vapply(pool$workers, function(w) !is.null(w$job) || isTRUE(w$loading),
                                  logical(1))))
}

apps_poll <- function() {
  pool <- .hfb$pool
  if (is.null(pool)) return(invisible())
  pool$polling <- FALSE
  for (i in seq_along(pool$workers)) {
    w <- pool$workers[[i]]
    if (is.null(w$job) && !isTRUE(w$loading)) next
    res <- tryCatch(apps_worker_read(w), error = function(e) list(code = 500L, error = e))
    if (is.null(res)) {
      if (w$session$is_alive()) next
      res <- list(code = 500L, error = NULL)
    }
    job <- w$job
    w$job <- NULL
    if (res$code == 500L || !w$session$is_alive()) {
      pool$workers[[i]] <- apps_worker_new(pool$spec)
      if (!is.null(job)) {
        job$reject(structure(class = c("hfbridge_error_python", "hfbridge_error", "error",
                                       "condition"),
          list(message = "The background worker stopped during the call; it is restarted.",
               call = NULL)))
      }
    } else if (!is.null(job)) {
      if (is.null(res$error)) job$resolve(res$result) else job$reject(apps_job_error(res$error))
    }
  }
  apps_dispatch()
  invisible()
}

# The condition the call signalled in the worker (callr wraps it).
apps_job_error <- function(err) {
  inner <- err$parent
  if (inherits(inner, "condition")) inner else err
}

apps_run_here <- function(job) {
  tryCatch(job$resolve(withCallingHandlers(do.call(job$fun, job$args), hfbridge_progress =
    function(c) if (is.function(job$progress)) job$progress(c$value, c$detail))),
    error = function(e) job$reject(e))
}

# The suggested packages a Shiny helper needs, or a classed error saying how to get them.
apps_need <- function(packages) {
  missing <- packages[!vapply(packages, requireNamespace, logical(1), quietly = TRUE)]
  if (length(missing)) {
    hfbridge_abort("unsupported", sprintf(
      "This needs the R package%s %s: install %s (Debian: %s).", if (length(missing) > 1) "s"
      else "", paste(missing, collapse = ", "), paste(missing, collapse = ", "),
      paste0("r-cran-", missing, collapse = " ")), packages = missing)
  }
  invisible(TRUE)
}
