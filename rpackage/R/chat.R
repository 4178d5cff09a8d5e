# Chat: one object for a Hub model run here, an Inference Provider, any OpenAI-compatible endpoint,
# or a failover chain of them, modelled on ellmer's Chat. pybridge/chat.py keeps the turns and
# talks to the backends; R runs the tools (they are R functions).

#' Chat with a model: local, an Inference Provider, or any OpenAI-compatible endpoint
#'
#' `hf_chat()` returns a chat object modelled on ellmer's `Chat`. With `model` alone, the Hub
#' model runs in this R session through transformers (its chat template, greedy unless
#' `temperature` is set; the model is loaded once per session, as [pipeline()]'s are: see
#' [pipeline_cache_info()]); `provider` uses HF Inference Providers through huggingface_hub's
#' `InferenceClient`; `endpoint` is any OpenAI-compatible server (TGI, vLLM, `transformers
#' serve`, llama.cpp, Ollama) or a server from [hf_serve()]; `endpoints` is a failover chain of
#' these (see [hf_endpoint()]).
#'
#' The object's methods:
#' \describe{
#'   \item{`$chat(..., tool_choice = NULL)`}{Sends the strings in `...` (pasted together) as the
#'     user's turn and returns the reply, a string of class `hfbridge_reply` with the attributes
#'     `endpoint`, `tries`, `latency_ms`, `tokens_in` and `tokens_out`. Registered tools are
#'     called when the model asks, and their results are sent back, until the model replies with
#'     text. `tool_choice` (default: the chat's) is `"auto"` (the model decides), `"none"` (no
#'     tools offered), `"required"` (the model must call one of the tools) or a tool's name (it
#'     must call that one); it applies to the user's turn, and the answer to the tools' results
#'     is always the model's choice. A local model's forced call is enforced while generating;
#'     its calls are read back by the model's response template (Qwen's and Hermes'
#'     `<tool_call>` form, among others), as transformers serve reads them.}
#'   \item{`$stream(..., callback = NULL, tool_choice = NULL)`}{As `$chat()`, but calls
#'     `callback(chunk)` once per chunk of text as it arrives (by default it writes the chunk to
#'     the console, and a newline at the end), and returns the reply, invisibly. The chain is
#'     tried until the first chunk; after that, the stream stays with the endpoint that sent it.
#'     Tool calls are read from the stream, not passed to `callback`; the registered tools are
#'     run, and the answer to their results streams in turn.}
#'   \item{`$chat_structured(..., schema)`}{Asks for a reply that follows the JSON schema
#'     `schema` (an R list) through `response_format`, and returns it parsed: a data frame for an
#'     array of objects, otherwise a list or a vector.}
#'   \item{`$register_tool(tool)`}{Registers a tool from [hf_tool()].}
#'   \item{`$get_turns()`}{A data frame of the turns: `role`, `content`, `tool_calls`,
#'     `tokens_in`, `tokens_out`, `endpoint`, `tries`, `latency_ms`.}
#'   \item{`$get_tokens()`}{A data frame of the tokens of each reply: `input`, `output`.}
#'   \item{`$clone()`}{A copy with the same turns, which then goes its own way.}
#' }
#' A local model with learned positions (GPT-2's `n_positions`) refuses a conversation that,
#' with `max_tokens`, needs more than it has (`hfbridge_error_invalid_argument`, naming the
#' longest message); one with rotary positions (Llama, Qwen) runs past its
#' `max_position_embeddings`, as in transformers (which warns), though its answers may degrade
#' there, and refuses only a conversation whose attention could not fit in memory
#' (`hfbridge_error_memory`).
#'
#' A failed request leaves the turns as they were. Errors are classed: `hfbridge_error_rate_limit`
#' (field `retry_after`), `hfbridge_error_overloaded`, `hfbridge_error_validation`,
#' `hfbridge_error_context_length`, `hfbridge_error_auth`, `hfbridge_error_network`, and
#' `hfbridge_error_unreachable` when every endpoint of a chain failed (field `errors`, one per
#' endpoint). Keys and tokens are never printed.
#'
#' @param model A Hub repo id (or a local folder) to run here, or the model to ask an endpoint
#'   or provider for.
#' @param endpoint A URL of an OpenAI-compatible server (`"http://host:port/v1"`), or a server
#'   from [hf_serve()].
#' @param provider An Inference Provider: `"auto"` or a name.
#' @param system_prompt The system prompt.
#' @param ... Default parameters of every request: `max_tokens`, `temperature`, `top_p`,
#'   `seed`, `stop` (a non-empty string or a vector of them, which end the reply), `tool_choice`.
#'   `NA` is refused.
#' @param endpoints A failover chain: a list of [hf_endpoint()]s, URLs and servers.
#' @param api_key A key for `endpoint` or `provider` (the HF token goes only to Hugging Face
#'   hosts, and is used for providers by default).
#' @param timeout Seconds one request may take.
#' @param token An HF token, for Hugging Face hosts only.
#' @return An R6 object of class `hfbridge_chat`.
#' @seealso [hf_tool()], [hf_endpoint()], [hf_serve()], [hf_inference()]
#' @export
#' @examplesIf hfbridge:::examples_ready()
#' # A tiny stand-in chat model from the demo Hub: real chat template, no sensible answers.
#' chat <- hf_chat("hfbridge-tiny/chat", system_prompt = "Be brief.", max_tokens = 8)
#' chat$chat("What is the capital of France?")
#' chat$stream("And of Italy?")
#' chat$get_turns()
#'
#' srv <- hf_serve(c(chat = "hfbridge-tiny/chat"))
#' remote <- hf_chat(endpoint = srv, max_tokens = 8)
#' remote$chat("Hello!")
#' hf_serve_stop(srv)
hf_chat <- function(model = NULL, endpoint = NULL, provider = NULL, system_prompt = NULL, ...,
                    endpoints = NULL, api_key = NULL, timeout = 120, token = NULL) {
  if (!is.null(model)) check_string(model, "model")
  if (!is.null(system_prompt)) check_string(system_prompt, "system_prompt")
  if (!is.null(api_key)) check_string(api_key, "api_key")
  hub_check_token(token)
  check_seconds(timeout, "timeout")
  chain <- endpoint_chain(endpoint, provider, endpoints, model, api_key, timeout,
                          local_ok = !is.null(model))
  py <- py_call("chat", "Chat", chain, model = model, system_prompt = system_prompt,
                params = chat_params(list(...)), env = hf_env(), token = token)
  servers <- Filter(function(x) inherits(x, "hfbridge_server"), c(list(endpoint), endpoints))
  hfbridge_chat$new(py, servers)
}

#' A tool a chat model may call
#'
#' Wraps an R function for `chat$register_tool()` (see [hf_chat()]). When the model asks for the
#' tool, the function is called with the arguments the model gave, by name, and its result is
#' sent back to the model: a string as it is, anything else as JSON. A data frame becomes an
#' array of its rows (one object per row), a factor its labels, dates and times text, `NA`,
#' `NaN`, `Inf` and `NULL` null; a single unnamed value is itself, a longer vector an array (an
#' object when it has names), a matrix an array of its rows, and a list an array (an object when
#' it has names). A result that JSON cannot hold (a function, an environment, complex numbers)
#' signals `hfbridge_error_invalid_argument`, and the request leaves the chat's turns as they
#' were. An error in the function is sent to the model as the text `"Error: <message>"`.
#'
#' @param fun The R function.
#' @param name The tool's name, as the model sees it.
#' @param description What the tool does, for the model.
#' @param parameters The JSON schema of the arguments, as an R list: for example
#'   `list(type = "object", properties = list(city = list(type = "string")),
#'   required = list("city"))`.
#' @return An object of class `hfbridge_tool`.
#' @export
#' @examples
#' weather <- hf_tool(
#'   function(city) paste("Sunny in", city), "get_weather", "The weather in a city.",
#'   list(type = "object", properties = list(city = list(type = "string")),
#'        required = list("city"))
#' )
#' weather
hf_tool <- function(fun, name, description, parameters = list(type = "object",
                                                                properties = list())) {
  if (!is.function(fun)) {
    hfbridge_abort("invalid_argument", "`fun` must be a function.", argument = "fun")
  }
  check_string(name, "name")
  check_string(description, "description")
  if (!is.list(parameters)) {
    hfbridge_abort("invalid_argument", "`parameters` must be a JSON schema as an R list.",
                   argument = "parameters")
  }
  structure(list(fun = fun, name = name, description = description, parameters = parameters),
            class = "hfbridge_tool")
}

#' @export
print.hfbridge_tool <- function(x, ...) {
  cat(sprintf("<hfbridge_tool> %s: %s\n", x$name, x$description))
  invisible(x)
}

#' @export
print.hfbridge_reply <- function(x, ...) {
  cat(unclass(x), "\n", sep = "")
  invisible(x)
}

hfbridge_chat <- R6::R6Class(
  classname = "hfbridge_chat",
  inherit = hfbridge_handle,
  cloneable = TRUE,
  public = list(
    # `servers`: the hf_serve() servers of the chain, kept as long as the chat is, since a
    # server whose handle is collected stops.
    initialize = function(py, servers = list()) {
      super$initialize(py)
      private$servers <- servers
      private$send_py <- py$send  # looked up once: each `$` on a Python object costs ~50 us
      # R6's clone() would share the Python chat, and its turns, between the two objects: this
      # one copies them. (R6 reserves the name, so it is replaced here rather than declared.)
      unlockBinding("clone", self)
      self$clone <- function(deep = FALSE) private$copy()
      lockBinding("clone", self)
    },
    chat = function(..., tool_choice = NULL) {
      private$converse(chat_content(...), tool_choice)
    },
    stream = function(..., callback = NULL, tool_choice = NULL) {
      console <- is.null(callback)
      callback <- callback %||% function(chunk) cat(chunk)
      if (!is.function(callback)) {
        hfbridge_abort("invalid_argument", "`callback` must be a function of one chunk.",
                       argument = "callback")
      }
      stream_once <- function(content, tool_choice = NULL) {
        private$stream_turn(content, tool_choice, callback)
      }
      content <- chat_content(...)
      res <- private$whole_request(function() {
        private$answer_tools(stream_once(content, tool_choice), function() stream_once(NULL))
      })
      if (console) cat("\n")
      invisible(chat_reply(res$text, res))
    },
    chat_structured = function(..., schema) {
      if (missing(schema) || !is.list(schema)) {
        hfbridge_abort("invalid_argument", "`schema` must be a JSON schema as an R list.",
                       argument = "schema")
      }
      res <- call_python(private$live()$structured, chat_content(...), chat_json_whole(schema),
                         env = hf_env())
      if (identical(res$kind, "frame")) {
        cols <- lapply(res$value, function(col) unlist(lapply(col, function(v) v %||% NA)))
        return(as.data.frame(cols, stringsAsFactors = FALSE))
      }
      res$value
    },
    register_tool = function(tool) {
      if (!inherits(tool, "hfbridge_tool")) {
        hfbridge_abort("invalid_argument", "`tool` must come from hf_tool().", argument = "tool")
      }
      private$tools[[tool$name]] <- tool
      invisible(self)
    },
    get_turns = function() {
      cols <- call_python(private$live()$turn_columns)
      frame <- columns_frame(cols, c(
        role = "character", content = "character", tool_calls = "character",
        tokens_in = "integer", tokens_out = "integer", endpoint = "character",
        tries = "integer", latency_ms = "double"))
      for (name in c("tokens_in", "tokens_out", "tries")) {
        frame[[name]][frame[[name]] < 0L] <- NA_integer_
      }
      frame$endpoint[!nzchar(frame$endpoint)] <- NA_character_
      frame
    },
    get_tokens = function() {
      turns <- self$get_turns()
      replies <- turns[turns$role == "assistant", , drop = FALSE]
      data.frame(input = replies$tokens_in, output = replies$tokens_out)
    }
  ),
  private = list(
    noun = "chat",
    copy = function() {
      twin <- hfbridge_chat$new(call_python(private$live()$clone), private$servers)
      for (tool in private$tools) twin$register_tool(tool)
      twin
    },
    remedy = "Make it again with hf_chat().",
    tools = list(),
    servers = list(),
    send_py = NULL,
    describe = function(...) {
      if (!private$usable()) return(sprintf("<hfbridge_chat>%s", private$status()))
      py <- private$py
      turns <- self$get_turns()
      c(sprintf("<hfbridge_chat> %d turns", nrow(turns)),
        paste0("  backends: ", paste(unlist(call_python(py$backend_labels)), collapse = " -> ")),
        if (length(private$tools)) paste0("  tools: ", paste(names(private$tools),
                                                             collapse = ", ")))
    },
    converse = function(content, tool_choice = NULL) {
      force(content)
      res <- private$whole_request(function() {
        private$answer_tools(private$send(content, tool_choice), function() private$send(NULL))
      })
      chat_reply(res$text, res)
    },
    # A request and its tool rounds: if any step fails (a tool's result that is not JSON, the
    # answer to the results), the turns are left as they were before the request.
    whole_request = function(ask) {
      py <- private$live()
      before <- call_python(py$turn_count)
      done <- FALSE
      on.exit(if (!done) call_python(py$rollback, before))
      res <- ask()
      done <- TRUE
      res
    },
    # Runs the tools a reply calls and asks again (`again()`), until a reply calls none.
    answer_tools = function(res, again) {
      rounds <- 0L
      while (length(res$tool_calls)) {
        rounds <- rounds + 1L
        if (rounds > 10L) {
          hfbridge_abort("unsupported", "The model kept calling tools (10 rounds); stopped.")
        }
        for (call in res$tool_calls) private$run_tool(call)
        res <- again()
      }
      res
    },
    send = function(content, tool_choice = NULL) {
      private$live()
      call_python(private$send_py, content, tools = private$tool_specs(),
                  params = chat_tool_choice(tool_choice), env = hf_env())
    },
    # One streamed reply: each chunk to `callback`; returns the record, with the reply's text.
    stream_turn = function(content, tool_choice, callback) {
      stream <- call_python(private$live()$stream, content, tools = private$tool_specs(),
                            params = chat_tool_choice(tool_choice), env = hf_env())
      finished <- FALSE
      on.exit(if (!finished) call_python(stream$close))
      next_chunk <- stream$next_chunk  # looked up once: each `$` on a Python object costs ~50 us
      chunks <- character()
      repeat {
        chunk <- call_python(next_chunk)
        if (is.null(chunk)) break
        chunks[[length(chunks) + 1L]] <- chunk
        callback(chunk)
      }
      finished <- TRUE
      c(list(text = paste(chunks, collapse = "")), call_python(stream$record))
    },
    tool_specs = function() {
      tools <- lapply(unname(private$tools), function(t) list(
        type = "function",
        `function` = list(name = t$name, description = t$description,
                          parameters = chat_json_whole(t$parameters))))
      if (length(tools)) tools
    },
    run_tool = function(call) {
      tool <- private$tools[[call$name]]
      result <- if (is.null(tool)) {
        sprintf("Error: no tool named '%s'.", call$name)
      } else {
        args <- call_python(chat_py()$tool_arguments, call$arguments)
        tryCatch(do.call(tool$fun, args),
                 error = function(e) paste("Error:", conditionMessage(e)))
      }
      call_python(private$live()$add_tool_result, call$id, call$name,
                  chat_tool_value(result, call$name))
    }
  )
)

chat_py <- function() pybridge_module("chat")

chat_tool_choice <- function(tool_choice) {
  if (!is.null(tool_choice)) chat_no_na(list(tool_choice = tool_choice))
}

# reticulate turns a logical NA into True and a character NA into "NA" (a stop string, a tool's
# name): NA is refused here.
chat_no_na <- function(params) {
  for (name in names(params)) {
    value <- params[[name]]
    if (is.atomic(value) && anyNA(value)) {
      hfbridge_abort("invalid_argument", sprintf("`%s` must not be NA.", name),
                     argument = name)
    }
  }
  params
}

chat_content <- function(...) {
  parts <- c(...)
  if (!is.character(parts) || !length(parts) || anyNA(parts)) {
    hfbridge_abort("invalid_argument", "Give the message as one or more strings.",
                   argument = "...")
  }
  paste(check_texts(parts, "..."), collapse = "\n")
}

chat_params <- function(params) {
  if (length(params) && (is.null(names(params)) || !all(nzchar(names(params))))) {
    hfbridge_abort("invalid_argument", paste(
      "Chat parameters must be named: max_tokens, temperature, top_p, seed, stop, tool_choice."),
      argument = "...")
  }
  for (name in intersect(names(params), c("max_tokens", "seed"))) {
    if (is.numeric(params[[name]]) && length(params[[name]]) == 1L && !is.na(params[[name]]) &&
        params[[name]] == round(params[[name]]) &&
        abs(params[[name]]) <= .Machine$integer.max) {
      params[[name]] <- as.integer(params[[name]])
    }
  }
  chat_no_na(params)
}

# A JSON schema written in R holds doubles: `minItems = 2` would reach Python as 2.0, which
# llguidance refuses where the schema wants an integer. Whole numbers go as integers.
chat_json_whole <- function(x) {
  if (is.list(x)) {
    x[] <- lapply(x, chat_json_whole)
    return(x)
  }
  if (is.double(x) && length(x) && all(is.finite(x)) && all(x == trunc(x)) &&
      all(abs(x) <= .Machine$integer.max)) {
    storage.mode(x) <- "integer"
  }
  x
}

# A tool's result as the JSON a user expects, in the values reticulate hands to Python as
# JSON's: a data frame as its rows (one object each), a factor as its labels, dates and times as
# text, NA, NaN, Inf and NULL as null; a single unnamed value as itself, a longer vector as an
# array (an object when named), a matrix as its rows, a list as an array (an object when named).
chat_tool_value <- function(x, tool) {
  if (is.null(x)) return(NULL)
  if (is.data.frame(x)) {
    return(lapply(seq_len(nrow(x)), function(i) {
      lapply(x, function(col) chat_tool_value(if (is.list(col)) col[[i]] else unname(col[i]),
                                              tool))
    }))
  }
  if (is.factor(x) || inherits(x, c("Date", "POSIXt"))) {
    x <- stats::setNames(as.character(x), names(x))
  }
  if (is.matrix(x) && is.atomic(x)) {
    return(lapply(seq_len(nrow(x)), function(i) lapply(unname(x[i, ]), chat_json_scalar)))
  }
  if (is.list(x)) {
    out <- lapply(x, chat_tool_value, tool)
    return(if (is.null(names(x))) unname(out) else out)
  }
  if (is.atomic(x) && !is.complex(x) && !is.raw(x)) {
    values <- lapply(unclass(x), chat_json_scalar)
    return(if (length(x) == 1L && is.null(names(x))) values[[1L]] else values)
  }
  hfbridge_abort("invalid_argument", sprintf(paste(
    "The result of the tool '%s' cannot be sent to the model as JSON (%s). Return text,",
    "numbers, logicals, lists or data frames."), tool, class(x)[[1L]]), argument = "tool")
}

# One value of a vector; a whole double goes as an integer (20, not 20.0), as in a schema.
chat_json_scalar <- function(v) {
  if (is.na(v) || (is.double(v) && !is.finite(v))) return(NULL)
  if (is.double(v) && v == trunc(v) && abs(v) <= .Machine$integer.max) as.integer(v) else v
}

# The reply with its record (pybridge.chat's reply, or a stream's record()).
chat_reply <- function(text, record) {
  count <- function(x) if (is.null(x)) NA_integer_ else as.integer(x)
  structure(text, class = c("hfbridge_reply", "character"),
            endpoint = record$endpoint, tries = as.integer(record$tries),
            latency_ms = record$latency_ms, tokens_in = count(record$prompt_tokens),
            tokens_out = count(record$completion_tokens))
}
