# hfbridge's example Shiny app: sentiment, semantic search and tokens.
#
# Run it with hfbridge::run_example_app(), or shiny::runApp() on this folder. Models come from
# the options hfbridge.app.* (run_example_app() sets them) or the HFBRIDGE_* variables, so the
# same app runs against a local mirror (HF_ENDPOINT) and against huggingface.co.
#
# Three rules make a model app behave for many users:
# 1. hfbridge_preload() loads every model when the app starts, here and in background workers.
# 2. Model calls go through hfbridge_async(): they run in a worker and return a promise, and
#    the observer does not return that promise, so neither this session nor any other waits.
# 3. Every call's error becomes a message in the app (quiet = TRUE keeps cli bars out of the
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
corpus <- readLines("corpus.txt", encoding = "UTF-8")

# ---- start-up: models and the corpus embeddings, once per process ---------------------------
# A model that fails to load leaves the other tabs working, with a message at the top.
startup_error <- NULL
corpus_embeddings <- NULL
tokenizer <- tryCatch(hfbridge_preload(tokenizer = tokenizer_id)$tokenizers[[1]],
                      error = function(e) {
                        startup_error <<- conditionMessage(e)
                        NULL
                      })
tryCatch({
  models <- hfbridge_preload(
    pipeline = list(sentiment = list("sentiment-analysis", model = sentiment_model)),
    embed = embed_model, workers = workers
  )
  corpus_embeddings <- embed_text(corpus, embed_model, normalize = TRUE, quiet = TRUE)
  message(sprintf("hfbridge app: models loaded in %.1f s, %d workers", models$seconds,
                  models$workers))
}, error = function(e) startup_error <<- c(startup_error, conditionMessage(e)))
shiny::onStop(hfbridge_workers_stop)

# ---- the calls that run in a worker (they see only their arguments) --------------------------
classify <- function(texts, model) {
  hfbridge::pipeline("sentiment-analysis", model, quiet = TRUE)(texts, quiet = TRUE)
}

embed_in_chunks <- function(texts, model, chunk = 200L) {
  starts <- seq(1L, length(texts), by = chunk)
  parts <- lapply(seq_along(starts), function(i) {
    rows <- starts[i]:min(length(texts), starts[i] + chunk - 1L)
    out <- hfbridge::embed_text(texts[rows], model, normalize = TRUE, quiet = TRUE)
    hfbridge::hfbridge_async_progress(max(rows) / length(texts),
                                      sprintf("%d of %d texts", max(rows), length(texts)))
    out
  })
  do.call(rbind, parts)
}

# ---- helpers ---------------------------------------------------------------------------------
lines_of <- function(text) {
  texts <- trimws(strsplit(text %||% "", "\n", fixed = TRUE)[[1]])
  texts[nzchar(texts)]
}

`%||%` <- function(x, y) if (is.null(x)) y else x

error_box <- function(message) {
  if (is.null(message)) return(NULL)
  div(class = "alert alert-danger", role = "alert", message)
}

top_k <- function(query_embedding, embeddings, documents, k) {
  similarity <- as.vector(embeddings %*% as.vector(query_embedding))
  best <- utils::head(order(similarity, decreasing = TRUE), k)
  data.frame(rank = seq_along(best), document = documents[best],
             similarity = sprintf("%.4f", similarity[best]))
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
    ".tokens-text{font-size:1.3em;line-height:2;white-space:pre-wrap;margin:1em 0}"
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
    )
  )
)

# ---- server ----------------------------------------------------------------------------------
server <- function(input, output, session) {
  state <- reactiveValues(sentiment = NULL, search = NULL, tokens = NULL, errors = list(),
                          status = list(), docs = character(0), docs_embeddings = NULL)

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

  output$startup_error <- renderUI({
    if (!is.null(startup_error)) {
      error_box(paste("Some models could not be loaded:", paste(startup_error, collapse = " ")))
    }
  })
  for (what in c("sentiment", "search", "docs", "tokens")) local({
    what <- what
    output[[paste0(what, "_error")]] <- renderUI(error_box(state$errors[[what]]))
    output[[paste0(what, "_status")]] <- renderText(state$status[[what]] %||% "")
  })

  sentiment_server(input, output, state, run, fail)
  search_server(input, output, state, run, fail)
  docs_server(input, output, session, state, run, fail)
  tokens_server(input, output, state, fail)
}

# One function per tab; `state` holds what the tabs show, `run()` starts a job, `fail()` shows
# an error.
sentiment_server <- function(input, output, state, run, fail) {
  observeEvent(input$sentiment_run, {
    texts <- lines_of(input$sentiment_text)
    if (!length(texts)) return(fail("sentiment", "Type at least one text."))
    run("sentiment", hfbridge_async(classify, texts, sentiment_model), function(res) {
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

search_server <- function(input, output, state, run, fail) {
  observeEvent(input$search_run, {
    query <- trimws(input$search_query %||% "")
    k <- input$search_k
    if (!nzchar(query)) return(fail("search", "Type a query."))
    if (!is.numeric(k) || is.na(k) || k < 1) return(fail("search", "Top k must be at least 1."))
    if (is.null(corpus_embeddings)) return(fail("search", "The corpus could not be embedded."))
    documents <- c(corpus, state$docs)
    embeddings <- rbind(corpus_embeddings, state$docs_embeddings)
    run("search", hfbridge_async(hfbridge::embed_text, query, embed_model, normalize = TRUE,
                                 quiet = TRUE),
        function(q) state$search <- top_k(q, embeddings, documents, k))
  })
  output$search_table <- renderTable(state$search)
}

docs_server <- function(input, output, session, state, run, fail) {
  observeEvent(input$docs_add, {
    texts <- lines_of(input$docs_text)
    if (!length(texts)) return(fail("docs", "Paste at least one document."))
    progress <- shiny::Progress$new(session, min = 0, max = 1)
    progress$set(message = sprintf("Embedding %d documents", length(texts)), value = 0)
    job <- hfbridge_async(embed_in_chunks, texts, embed_model,
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

shinyApp(ui, server)
