# hfbridge's example Shiny app: sentiment, semantic search, tokens, chat and image search.
#
# Run it with hfbridge::run_example_app(), or shiny::runApp() on this folder. Models come from
# the options hfbridge.app.* (run_example_app() sets them) or the HFBRIDGE_* variables, so the
# same app runs against a local mirror (HF_ENDPOINT) and against huggingface.co.
#
# Four rules make a model app behave for many users:
# 1. Models load once, when the app starts: with hfbridge_preload() here and in background
#    workers, or, with the server setting, once in one hf_serve() process that every worker
#    and every chat sends its requests to.
# 2. Model calls go through hfbridge_async(): they run in a worker and return a promise, and
#    the observer does not return that promise, so neither this session nor any other waits.
# 3. A chat streams from its own R process (one per session, holding the session's turns); the
#    session reads the chunks every 50 ms while a reply streams.
# 4. Every call's error becomes a message in the app (quiet = TRUE keeps cli bars out of the
#    console; long jobs report to a shiny::Progress instead).

library(shiny)
library(hfbridge)

app_setting <- function(name, variable, default) {
  value <- getOption(paste0("hfbridge.app.", name))
  if (!is.null(value)) return(value)
  value <- Sys.getenv(variable)
  if (nzchar(value)) value else default
}

sentiment_model <- app_setting("sentiment_model", "HFBRIDGE_SENTIMENT_MODEL", NULL)
embed_model <- app_setting("embed_model", "HFBRIDGE_EMBED_MODEL",
                           "sentence-transformers/all-MiniLM-L6-v2")
tokenizer_id <- app_setting("tokenizer", "HFBRIDGE_TOKENIZER", embed_model)
workers <- as.integer(app_setting("workers", "HFBRIDGE_WORKERS", 2L))
use_server <- tolower(as.character(app_setting("server", "HFBRIDGE_SERVER", FALSE))) %in%
  c("true", "1", "yes")
chat_model <- app_setting("chat_model", "HFBRIDGE_CHAT_MODEL", NULL)
chat_max_tokens <- as.integer(app_setting("chat_max_tokens", "HFBRIDGE_CHAT_MAX_TOKENS", 256L))
chat_system_prompt <- "You are a helpful assistant."
clip_model <- app_setting("clip_model", "HFBRIDGE_CLIP_MODEL", NULL)
corpus <- readLines("corpus.txt", encoding = "UTF-8")
image_files <- normalizePath(list.files("images", pattern = "[.](png|jpe?g)$", full.names = TRUE,
                                        ignore.case = TRUE))
# The page shows the bundled images from this URL prefix.
shiny::addResourcePath("hfbridge-images", normalizePath("images"))

# ---- the calls that run in a worker (they see only their arguments) --------------------------
# With `url` (the server's), the worker sends the texts to the server, which does the work and
# batches them with other sessions' requests; without it, the worker runs its own copy. Server
# calls still run in a worker: a request made through reticulate holds this R process, and so
# every session, until the server answers (seconds for a few thousand documents).
classify <- function(texts, model, url = NULL) {
  if (!is.null(url)) {
    return(hfbridge::hf_inference("text-classification", texts, model = model, endpoint = url))
  }
  hfbridge::pipeline("sentiment-analysis", model, quiet = TRUE)(texts, quiet = TRUE)
}

embed_in_chunks <- function(texts, model, url = NULL, chunk = 200L) {
  embed <- function(x) {
    if (is.null(url)) return(hfbridge::embed_text(x, model, normalize = TRUE, quiet = TRUE))
    e <- hfbridge::hf_inference("feature-extraction", x, model = model, endpoint = url)
    e / sqrt(rowSums(e^2))  # as embed_text(normalize = TRUE), whatever the model's pooling
  }
  starts <- seq(1L, length(texts), by = chunk)
  parts <- lapply(seq_along(starts), function(i) {
    rows <- starts[i]:min(length(texts), starts[i] + chunk - 1L)
    out <- embed(texts[rows])
    hfbridge::hfbridge_async_progress(max(rows) / length(texts),
                                      sprintf("%d of %d texts", max(rows), length(texts)))
    out
  })
  do.call(rbind, parts)
}

# ---- what a session's chat process runs ------------------------------------------------------
# A chat keeps its turns in its hf_chat() object, so each session has its own R process holding
# one; a stream is many Python calls, which in the app's process would each block every session.
# Each chunk goes back as a callr message as soon as it arrives.
chat_open <- function(url, model, system_prompt, max_tokens) {
  chat <- hfbridge::hf_chat(model = model, endpoint = url, system_prompt = system_prompt,
                            max_tokens = max_tokens)
  assign("app_chat", chat, envir = globalenv())
  invisible(TRUE)
}

chat_turn <- function(text) {
  chat <- get("app_chat", envir = globalenv())
  chat$stream(text, callback = function(chunk) {
    signalCondition(structure(list(message = chunk, call = NULL),
                              class = c("hfbridge_chat_chunk", "callr_message", "condition")))
  })
  turns <- chat$get_turns()
  turns[turns$role %in% c("user", "assistant"), c("role", "content")]
}

`%||%` <- function(x, y) if (is.null(x)) y else x

# ---- start-up: models and the corpus embeddings, once per process ---------------------------
# A model that fails to load leaves the other tabs working, with a message at the top.
startup_error <- NULL
startup_failed <- function(e) {
  startup_error <<- c(startup_error, conditionMessage(e))
  NULL
}
corpus_embeddings <- NULL
tokenizer <- tryCatch(hfbridge_preload(tokenizer = tokenizer_id)$tokenizers[[1]],
                      error = startup_failed)

# The server: the chat model always (a chat streams from it), the other models with the server
# setting. hf_serve() needs a model for each task: without one, sentiment takes transformers'
# default, the model pipeline("sentiment-analysis") takes.
served <- c(
  if (use_server) c("text-classification" = sentiment_model %||%
                      "distilbert/distilbert-base-uncased-finetuned-sst-2-english",
                    "feature-extraction" = embed_model),
  if (!is.null(chat_model)) c(chat = chat_model)
)
srv <- if (length(served)) {
  tryCatch(hf_serve(served, max_tokens = chat_max_tokens), error = startup_failed)
}
# The calls get the server's URL, not the server object: they run in other R processes.
server_url <- NULL
if (!is.null(srv)) {
  server_url <- paste0(srv$url, "/v1")
  message("hfbridge app: models served at ", srv$url, " (log: ", srv$log, ")")
  shiny::onStop(function() hf_serve_stop(srv))
}

# The images' CLIP embeddings, once; the workers then hold the CLIP model for the queries' text
# embeddings (with the server setting too: the server has no image side).
image_embeddings <- if (!is.null(clip_model)) {
  tryCatch(embed_image(image_files, clip_model, normalize = TRUE, quiet = TRUE),
           error = startup_failed)
}
clip_loaded <- if (!is.null(image_embeddings)) clip_model

preload_models <- function() {
  if (use_server) {
    # The workers hold no other model: they send requests (the tokenizer starts their Python).
    models <- hfbridge_preload(embed = clip_loaded, tokenizer = tokenizer_id, workers = workers)
    corpus_embeddings <<- embed_in_chunks(corpus, embed_model, server_url, chunk = 256L)
  } else {
    models <- hfbridge_preload(
      pipeline = list(sentiment = list("sentiment-analysis", model = sentiment_model)),
      embed = c(embed_model, clip_loaded), workers = workers
    )
    corpus_embeddings <<- embed_text(corpus, embed_model, normalize = TRUE, quiet = TRUE)
  }
  message(sprintf("hfbridge app: models loaded in %.1f s, %d workers", models$seconds,
                  models$workers))
}
if (!use_server || !is.null(srv)) tryCatch(preload_models(), error = startup_failed)
shiny::onStop(hfbridge_workers_stop)

# ---- helpers ---------------------------------------------------------------------------------
lines_of <- function(text) {
  texts <- trimws(strsplit(text %||% "", "\n", fixed = TRUE)[[1]])
  texts[nzchar(texts)]
}

error_box <- function(message) {
  if (is.null(message)) return(NULL)
  div(class = "alert alert-danger", role = "alert", message)
}

chat_bubble <- function(role, text, id = NULL) {
  div(id = id, class = paste0("chat-turn chat-", role),
      div(class = "chat-role", if (role == "user") "You" else "Model"),
      div(class = "chat-content", text))
}

top_k <- function(query_embedding, embeddings, documents, k) {
  similarity <- as.vector(embeddings %*% as.vector(query_embedding))
  best <- utils::head(order(similarity, decreasing = TRUE), k)
  data.frame(rank = seq_along(best), document = documents[best],
             similarity = sprintf("%.4f", similarity[best]))
}

# A thumbnail of a bundled image with its rank and its similarity to the query.
image_hit <- function(rank, file, similarity) {
  div(class = "image-hit",
      tags$img(src = paste0("hfbridge-images/", utils::URLencode(file, reserved = TRUE)),
               alt = file),
      div(class = "image-name", sprintf("%d. %s", rank, file)),
      div(class = "image-similarity", similarity))
}

# The text as one HTML string (no whitespace between tags: the text keeps its own spaces), each
# token a coloured span at its offsets, its token and id in the tooltip.
highlight_tokens <- function(text, offsets, ids, tokens) {
  escape <- htmltools::htmlEscape
  html <- character(0)
  at <- 1L
  for (i in seq_len(nrow(offsets))) {
    start <- offsets[i, 1]
    end <- offsets[i, 2]
    if (end < start || start < at) next
    if (start > at) html <- c(html, escape(substr(text, at, start - 1L)))
    html <- c(html, sprintf('<span class="tok tok%d" title="%s">%s</span>', i %% 4,
                            escape(sprintf("%s (id %d)", tokens[i], ids[i]), attribute = TRUE),
                            escape(substr(text, start, end))))
    at <- end + 1L
  }
  if (at <= nchar(text)) html <- c(html, escape(substr(text, at, nchar(text))))
  div(class = "tokens-text", HTML(paste(html, collapse = "")))
}

# ---- UI --------------------------------------------------------------------------------------
ui <- fluidPage(
  tags$head(tags$style(HTML(
    ".tok{border-radius:3px;padding:1px 0}.tok0{background:#fde2a7}.tok1{background:#bfe3f5}",
    ".tok2{background:#c9efc5}.tok3{background:#f3c9e6}",
    ".tokens-text{font-size:1.3em;line-height:2;white-space:pre-wrap;margin:1em 0}",
    ".chat-turn{margin:.6em 0;padding:.5em .8em;border-radius:6px;max-width:48em}",
    ".chat-user{background:#e8f0fe}.chat-assistant{background:#f1f3f4}",
    ".chat-role{font-size:.8em;color:#666}.chat-content{white-space:pre-wrap}",
    ".chat-content:empty:after{content:'\\2026';color:#999}",
    ".image-hits{display:flex;flex-wrap:wrap;gap:1em;margin:1em 0}",
    ".image-hit{width:13em;text-align:center;border:1px solid #ddd;border-radius:6px;",
    "padding:.5em;overflow-wrap:anywhere}",
    ".image-hit img{width:128px;height:128px;object-fit:contain;display:block;margin:0 auto}",
    ".image-similarity{font-family:monospace;color:#555}"
  ))),
  titlePanel("hfbridge: Hugging Face models in Shiny"),
  uiOutput("startup_error"),
  tabsetPanel(
    id = "tab",
    tabPanel(
      "Sentiment", value = "sentiment",
      textAreaInput("sentiment_text", "Texts, one per line", rows = 4, width = "100%",
                    value = "This course is excellent.\nThe explanation was very confusing."),
      actionButton("sentiment_run", "Classify", class = "btn-primary"),
      span(id = "sentiment_status", textOutput("sentiment_status", inline = TRUE)),
      uiOutput("sentiment_error"),
      tableOutput("sentiment_table"),
      plotOutput("sentiment_plot", height = "250px")
    ),
    tabPanel(
      "Semantic search", value = "search",
      textInput("search_query", "Query", "Which animal played outside?", width = "100%"),
      numericInput("search_k", "Top k", 5, min = 1, max = 50, width = "120px"),
      actionButton("search_run", "Search", class = "btn-primary"),
      span(id = "search_status", textOutput("search_status", inline = TRUE)),
      uiOutput("search_error"),
      tableOutput("search_table"),
      hr(),
      textAreaInput("docs_text", "Add documents to this session's corpus, one per line",
                    rows = 3, width = "100%"),
      actionButton("docs_add", "Embed and add"),
      span(id = "docs_status", textOutput("docs_status", inline = TRUE)),
      uiOutput("docs_error")
    ),
    tabPanel(
      "Tokens", value = "tokens",
      textInput("tokens_text", "Text", "Tokenizers split words into pieces.", width = "100%"),
      actionButton("tokens_run", "Tokenize", class = "btn-primary"),
      uiOutput("tokens_error"),
      uiOutput("tokens_highlight"),
      tableOutput("tokens_table")
    ),
    tabPanel(
      "Chat", value = "chat",
      uiOutput("chat_note"),
      uiOutput("chat_history"),
      uiOutput("chat_pending"),
      textInput("chat_text", "Message", width = "100%"),
      actionButton("chat_send", "Send", class = "btn-primary"),
      span(id = "chat_status", textOutput("chat_status", inline = TRUE)),
      uiOutput("chat_error")
    ),
    tabPanel(
      "Image search", value = "images",
      uiOutput("images_note"),
      textInput("images_query", "Describe an image", "a red circle", width = "100%"),
      numericInput("images_k", "Top k", min(3L, length(image_files)), min = 1,
                   max = length(image_files), width = "120px"),
      actionButton("images_run", "Search", class = "btn-primary"),
      span(id = "images_status", textOutput("images_status", inline = TRUE)),
      uiOutput("images_error"),
      uiOutput("images_hits")
    )
  )
)

# ---- server ----------------------------------------------------------------------------------
server <- function(input, output, session) {
  state <- reactiveValues(sentiment = NULL, search = NULL, tokens = NULL, images = NULL,
                          errors = list(),
                          status = list(), docs = character(0), docs_embeddings = NULL,
                          chat_turns = NULL, chat_pending = NULL, chat_reply = "",
                          chat_active = FALSE)

  # Starts a promise and returns at once: the result and any error arrive later, through state.
  run <- function(what, promise, done) {
    state$errors[[what]] <- NULL
    state$status[[what]] <- "running"
    promises::then(promise, onFulfilled = function(value) {
      done(value)
      state$status[[what]] <- "done"
    }, onRejected = function(e) {
      state$errors[[what]] <- conditionMessage(e)
      state$status[[what]] <- "error"
    })
    invisible(NULL)
  }
  fail <- function(what, message) {
    state$errors[[what]] <- message
    state$status[[what]] <- "error"
  }
  # TRUE if the models are there to call: with the server setting, if the server started.
  can_call <- function(what) {
    if (!use_server || !is.null(srv)) return(TRUE)
    fail(what, "The model server did not start (see the message at the top).")
    FALSE
  }

  output$startup_error <- renderUI({
    if (!is.null(startup_error)) {
      error_box(paste("Some models could not be loaded:", paste(startup_error, collapse = " ")))
    }
  })
  for (what in c("sentiment", "search", "docs", "tokens", "chat", "images")) local({
    what <- what
    output[[paste0(what, "_error")]] <- renderUI(error_box(state$errors[[what]]))
    output[[paste0(what, "_status")]] <- renderText(state$status[[what]] %||% "")
  })

  sentiment_server(input, output, state, run, fail, can_call)
  search_server(input, output, state, run, fail, can_call)
  docs_server(input, output, session, state, run, fail, can_call)
  tokens_server(input, output, state, fail)
  chat_server(input, output, session, state, fail)
  images_server(input, output, state, run, fail)
}

# One function per tab; `state` holds what the tabs show, `run()` starts a job, `fail()` shows
# an error.
sentiment_server <- function(input, output, state, run, fail, can_call) {
  model <- if (use_server) served[["text-classification"]] else sentiment_model
  observeEvent(input$sentiment_run, {
    texts <- lines_of(input$sentiment_text)
    if (!length(texts)) return(fail("sentiment", "Type at least one text."))
    if (!can_call("sentiment")) return()
    run("sentiment", hfbridge_async(classify, texts, model, server_url), function(res) {
      state$sentiment <- res
    })
  })
  output$sentiment_table <- renderTable({
    res <- state$sentiment
    if (is.null(res)) return(NULL)
    data.frame(text = res$text, label = res$label, score = sprintf("%.6f", res$score))
  })
  output$sentiment_plot <- renderPlot({
    res <- state$sentiment
    if (is.null(res)) return(NULL)
    graphics::par(mar = c(4, 16, 1, 10), xpd = TRUE)
    labels <- unique(res$label)
    palette <- stats::setNames(grDevices::hcl.colors(max(2, length(labels)), "Set 2"), labels)
    known <- c(POSITIVE = "#4caf50", NEGATIVE = "#e57373")
    palette[intersect(labels, names(known))] <- known[intersect(labels, names(known))]
    names <- ifelse(nchar(res$text) > 32, paste0(substr(res$text, 1, 30), "..."), res$text)
    graphics::barplot(rev(res$score), names.arg = rev(names), horiz = TRUE, las = 1,
                      xlim = c(0, 1), col = rev(palette[res$label]), xlab = "score")
    graphics::legend("topright", inset = c(-0.1, 0), legend = labels, fill = palette[labels],
                     bty = "n")
  })
}

search_server <- function(input, output, state, run, fail, can_call) {
  observeEvent(input$search_run, {
    query <- trimws(input$search_query %||% "")
    k <- input$search_k
    if (!nzchar(query)) return(fail("search", "Type a query."))
    if (!is.numeric(k) || is.na(k) || k < 1) return(fail("search", "Top k must be at least 1."))
    if (!can_call("search")) return()
    if (is.null(corpus_embeddings)) return(fail("search", "The corpus could not be embedded."))
    documents <- c(corpus, state$docs)
    embeddings <- rbind(corpus_embeddings, state$docs_embeddings)
    run("search", hfbridge_async(embed_in_chunks, query, embed_model, server_url),
        function(q) state$search <- top_k(q, embeddings, documents, k))
  })
  output$search_table <- renderTable(state$search)
}

docs_server <- function(input, output, session, state, run, fail, can_call) {
  observeEvent(input$docs_add, {
    texts <- lines_of(input$docs_text)
    if (!length(texts)) return(fail("docs", "Paste at least one document."))
    if (!can_call("docs")) return()
    progress <- shiny::Progress$new(session, min = 0, max = 1)
    progress$set(message = sprintf("Embedding %d documents", length(texts)), value = 0)
    job <- hfbridge_async(embed_in_chunks, texts, embed_model, server_url,
                          progress = function(value, detail) progress$set(value, detail = detail))
    job <- promises::finally(job, function() progress$close())
    run("docs", job, function(e) {
      state$docs <- c(state$docs, texts)
      state$docs_embeddings <- rbind(state$docs_embeddings, e)
    })
  })
  output$docs_status <- renderText({
    status <- state$status$docs %||% ""
    if (identical(status, "done")) sprintf("done: %d documents added", length(state$docs))
    else status
  })
}

tokens_server <- function(input, output, state, fail) {
  observeEvent(input$tokens_run, {
    text <- input$tokens_text %||% ""
    if (!nzchar(text)) return(fail("tokens", "Type a text."))
    if (is.null(tokenizer)) return(fail("tokens", "The tokenizer could not be loaded."))
    tryCatch({
      enc <- tokenizer$encode(text)
      real <- enc$attention_mask == 1L
      state$errors$tokens <- NULL
      state$tokens <- list(text = text, ids = enc$ids[real], tokens = enc$tokens[real],
                           offsets = enc$offsets[real, , drop = FALSE],
                           special = enc$special_tokens_mask[real] == 1L)
    }, error = function(e) fail("tokens", conditionMessage(e)))
  })
  output$tokens_highlight <- renderUI({
    t <- state$tokens
    if (is.null(t)) return(NULL)
    keep <- !t$special
    highlight_tokens(t$text, t$offsets[keep, , drop = FALSE], t$ids[keep], t$tokens[keep])
  })
  output$tokens_table <- renderTable({
    t <- state$tokens
    if (is.null(t)) return(NULL)
    data.frame(token = t$tokens, id = t$ids, start = t$offsets[, 1], end = t$offsets[, 2])
  })
}

chat_server <- function(input, output, session, state, fail) {
  chat <- new.env(parent = emptyenv())
  chat$phase <- "none"
  chat$reply <- ""
  # While a reply streams (or the process starts), read what the process sent every 50 ms.
  observe({
    if (!isTRUE(state$chat_active)) return()
    invalidateLater(50)
    isolate(chat_step(chat, state, fail))
  })
  # The process starts when the tab is first shown, so that it is ready by the first message.
  observeEvent(input$tab, if (identical(input$tab, "chat")) chat_start(chat, state))
  observeEvent(input$chat_send, {
    text <- trimws(input$chat_text %||% "")
    if (is.null(chat_model)) return(fail("chat", "No chat model is configured."))
    if (is.null(srv)) return(fail("chat", "The model server did not start (see the top)."))
    if (!nzchar(text)) return(fail("chat", "Type a message."))
    if (chat$phase == "replying" || !is.null(chat$waiting)) return()  # one reply at a time
    state$errors$chat <- NULL
    state$status$chat <- "running"
    state$chat_pending <- text
    state$chat_reply <- chat$reply <- ""
    chat$waiting <- text
    updateTextInput(session, "chat_text", value = "")
    chat_start(chat, state)
    state$chat_active <- TRUE
  })
  session$onSessionEnded(function() if (!is.null(chat$proc)) chat$proc$close(grace = 0))

  output$chat_note <- renderUI({
    if (is.null(chat_model)) {
      return(div(class = "alert alert-info", "No chat model is configured: start the app with",
                 code("run_example_app(chat_model = \"org/model\")"), "or set the variable",
                 code("HFBRIDGE_CHAT_MODEL")))
    }
    p(class = "text-muted", sprintf("%s, served at %s", chat_model, srv$url %||% "(no server)"))
  })
  output$chat_history <- renderUI({
    turns <- state$chat_turns
    lapply(seq_len(NROW(turns)), function(i) chat_bubble(turns$role[i], turns$content[i]))
  })
  output$chat_pending <- renderUI({
    if (is.null(state$chat_pending)) return(NULL)
    tagList(chat_bubble("user", state$chat_pending),
            chat_bubble("assistant", state$chat_reply, id = "chat_reply"))
  })
}

# A session's chat process (`chat$proc`, a callr::r_session) goes through phases: "none" (not
# started), "starting" (R starts), "opening" (chat_open() runs), "idle", "replying" (chat_turn()
# streams). `chat$waiting` is a message to send once it is idle; `chat$reply` the reply so far.
chat_start <- function(chat, state) {
  if (is.null(chat_model) || is.null(srv) || !is.null(chat$proc)) return()
  options <- callr::r_session_options(stdout = NULL, stderr = NULL, supervise = TRUE)
  chat$proc <- callr::r_session$new(options, wait = FALSE)
  chat$phase <- "starting"
  state$chat_active <- TRUE
}

chat_step <- function(chat, state, fail) {
  proc <- chat$proc
  while (!is.null(proc) && identical(proc, chat$proc) && proc$poll_process(0) == "ready") {
    msg <- proc$read()
    if (is.null(msg)) break
    chat_handle(chat, msg, state, fail)
  }
  if (!is.null(chat$proc) && !chat$proc$is_alive()) {
    chat_stopped(chat, state, fail, "The chat process stopped; send the message again.")
  }
  if (identical(chat$phase, "idle") && !is.null(chat$waiting)) {
    chat$proc$call(chat_turn, list(chat$waiting))
    chat$phase <- "replying"
    chat$waiting <- NULL
  }
  state$chat_reply <- chat$reply
  state$chat_active <- !chat$phase %in% c("idle", "none") || !is.null(chat$waiting)
}

# One message from the process: a chunk (301), started (201), a call's end (200), or its death.
chat_handle <- function(chat, msg, state, fail) {
  if (msg$code == 301L && inherits(msg$message, "hfbridge_chat_chunk")) {
    chat$reply <- paste0(chat$reply, msg$message$message)
  } else if (msg$code == 201L) {
    chat$proc$call(chat_open, list(server_url, chat_model, chat_system_prompt, chat_max_tokens))
    chat$phase <- "opening"
  } else if (msg$code == 200L && !is.null(msg$error)) {
    err <- if (inherits(msg$error$parent, "condition")) msg$error$parent else msg$error
    if (identical(chat$phase, "opening")) {
      return(chat_stopped(chat, state, fail, conditionMessage(err)))
    }
    chat$phase <- "idle"
    state$chat_pending <- NULL
    fail("chat", conditionMessage(err))
  } else if (msg$code == 200L) {
    if (identical(chat$phase, "replying")) {
      state$chat_turns <- msg$result
      state$chat_pending <- NULL
      state$status$chat <- "done"
    }
    chat$phase <- "idle"
  } else if (msg$code != 301L) {
    chat_stopped(chat, state, fail, "The chat process stopped; send the message again.")
  }
}

chat_stopped <- function(chat, state, fail, message) {
  if (!is.null(chat$proc)) try(chat$proc$close(grace = 0), silent = TRUE)
  chat$proc <- NULL
  chat$phase <- "none"
  chat$waiting <- NULL
  state$chat_pending <- NULL
  fail("chat", message)
}

# The query's CLIP text embedding runs in a worker; the images' embeddings are ready.
images_server <- function(input, output, state, run, fail) {
  observeEvent(input$images_run, {
    query <- trimws(input$images_query %||% "")
    k <- input$images_k
    if (is.null(clip_model)) return(fail("images", "No CLIP model is configured."))
    if (is.null(image_embeddings)) return(fail("images", "The images could not be embedded."))
    if (!nzchar(query)) return(fail("images", "Type a query."))
    if (!is.numeric(k) || is.na(k) || k < 1) return(fail("images", "Top k must be at least 1."))
    run("images", hfbridge_async(hfbridge::embed_text, query, clip_model, normalize = TRUE,
                                 quiet = TRUE),
        function(q) {
          state$images <- list(query = query,
                               hits = top_k(q, image_embeddings, basename(image_files), k))
        })
  })
  output$images_note <- renderUI({
    if (is.null(clip_model)) {
      return(div(class = "alert alert-info", "No CLIP model is configured: start the app with",
                 code("run_example_app(clip_model = \"openai/clip-vit-base-patch32\")"),
                 "or set the variable", code("HFBRIDGE_CLIP_MODEL")))
    }
    p(class = "text-muted", sprintf("%d bundled images, embedded with %s", length(image_files),
                                    clip_model))
  })
  output$images_hits <- renderUI({
    res <- state$images
    if (is.null(res)) return(NULL)
    hits <- res$hits
    tagList(
      h4(class = "image-query", sprintf("The images nearest to \u201c%s\u201d", res$query)),
      div(class = "image-hits", lapply(seq_len(nrow(hits)), function(i) {
        image_hit(hits$rank[i], hits$document[i], hits$similarity[i])
      }))
    )
  })
}

shinyApp(ui, server)
