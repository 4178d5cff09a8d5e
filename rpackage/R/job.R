# One runner for the work R drives step by step (pipelines, embeddings, fine-tuning, dataset
# chunks): the jobs of pybridge.jobs, whose steps all return one state, list(done, step, total,
# ...). It shows the progress, and stops the job cleanly when R is interrupted or fails.

# Runs `job` to the end and returns its result. With `whole`, a quiet job, or one of at most
# `units` units, runs in one Python call. Otherwise it runs in steps of `units` units or
# `seconds` seconds, under a cli progress bar named `label` unless quiet (`format`: the bar's
# cli format, which may use `state`, the last state). `units` may be a function of the job's
# total. `each(state)` sees every state and returns FALSE to stop early (the result is then
# NULL). An interrupt or an R error asks the job to stop; on an interrupt, `interrupted(state)`
# gets the state after stopping and may signal the condition the user should see.
job_run <- function(job, label, quiet = FALSE, units = NULL, seconds = NULL, whole = TRUE,
                    format = NULL, each = NULL, interrupted = NULL) {
  if (whole && quiet) return(py_call("jobs", "run", job))
  total <- as.numeric(job$total)
  if (is.function(units)) units <- units(total)
  if (whole && total <= units) return(py_call("jobs", "run", job))
  state <- list(done = FALSE, step = 0, total = total)
  bar <- NULL
  frame <- environment()
  # A total of 0 is not known yet (a Trainer counts its steps once it starts); -1, not before
  # the end.
  show <- function() {
    if (quiet || !is.null(bar) || state$total == 0) return()
    bar <<- cli::cli_progress_bar(label, total = if (state$total < 0) NA else state$total,
                                  format = format, auto_terminate = FALSE, .envir = frame)
  }
  on.exit(if (!isTRUE(state$done)) try(py_call("jobs", "stop", job), silent = TRUE), add = TRUE)
  show()
  stopped <- function() {
    state <<- py_call("jobs", "stop", job)
    if (!is.null(interrupted)) interrupted(state)
  }
  withCallingHandlers(repeat {
    state <- job_step(job, units, seconds)
    if (is.null(state)) break
    more <- is.null(each) || !isFALSE(each(state))
    show()
    if (!is.null(bar)) cli::cli_progress_update(id = bar, set = state$step)
    if (isTRUE(state$done)) break
    if (!more) {
      state <- py_call("jobs", "stop", job)
      break
    }
  }, interrupt = function(e) stopped())
  if (is.null(state)) {  # an interrupt that reached R as another error
    stopped()
    signal_interrupt()
  }
  if (!is.null(bar)) cli::cli_progress_done(id = bar)
  if (more) py_call("jobs", "result", job)
}

# One step of `job`; NULL when an interrupt ended it but reached R as another error: reticulate
# turns Python's KeyboardInterrupt into an R interrupt, unless R's own pending interrupt fires
# while it does, which gives an unrelated error ("No such namespace: reticulate").
job_step <- function(job, units, seconds) {
  tryCatch(py_call("jobs", "step", job, units = units, seconds = seconds),
           hfbridge_error = function(e) if (isTRUE(job$interrupted)) NULL else stop(e))
}

# What an unhandled interrupt does: its handlers run, then R returns to the top level.
signal_interrupt <- function() {
  signalCondition(structure(list(message = "", call = NULL),
                            class = c("interrupt", "condition")))
  invokeRestart("abort")
}
