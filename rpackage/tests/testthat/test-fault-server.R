# The fault server's R helpers (helper-fault-server.R): script it, call it, read its record.

chat_body <- '{"model": "m", "messages": [{"role": "user", "content": "hello"}], "stream": %s}'

test_that("the fault server answers as scripted and records what it was sent", {
  server <- fault_server_start()
  fault_script(server, list(
    list(kind = "status", status = 429L, retry_after = 2L, message = "slow down"),
    list(kind = "ok", text = "hi from R")
  ))
  limited <- fault_curl(server, "/v1/chat/completions", sprintf(chat_body, "false"))
  expect_identical(limited$status, 429L)
  expect_identical(limited$headers[["retry-after"]], "2")
  expect_identical(jsonlite::fromJSON(limited$body)$error,
                   list(message = "slow down", type = "rate_limit_error",
                        code = "rate_limit_exceeded"))
  ok <- fault_curl(server, "/v1/chat/completions", sprintf(chat_body, "false"))
  reply <- jsonlite::fromJSON(ok$body, simplifyVector = FALSE)
  expect_identical(reply$choices[[1]]$message$content, "hi from R")
  expect_identical(reply$model, "m")

  record <- fault_requests(server)
  expect_length(record, 2)
  expect_identical(vapply(record, `[[`, "", "path"), rep("/v1/chat/completions", 2))
  expect_identical(record[[2]]$method, "POST")
  expect_identical(record[[2]]$headers[["content-type"]], "application/json")
  expect_identical(record[[2]]$body$messages[[1]]$content, "hello")
  expect_false(record[[2]]$body$stream)
  expect_error(fault_script(server, list(list(kind = "explode"))), "kind is one of")
})

test_that("a stream ends with data: [DONE], and a dropped one is cut short without it", {
  server <- fault_server_start()
  fault_script(server, list(list(kind = "drop", after = 1L)))
  dropped <- fault_curl(server, "/v1/chat/completions", sprintf(chat_body, "true"))
  expect_identical(dropped$exit, 18L)  # curl: the chunked body ended early
  events <- strsplit(dropped$body, "\n\n", fixed = TRUE)[[1]]
  expect_length(events, 2)  # the role chunk and one word
  expect_identical(jsonlite::fromJSON(sub("^data: ", "", events[2]))$choices$delta$content,
                   "hello")

  whole <- fault_curl(server, "/v1/chat/completions", sprintf(chat_body, "true"))
  expect_identical(whole$exit, 0L)
  expect_identical(whole$headers[["content-type"]], "text/event-stream; charset=utf-8")
  events <- strsplit(whole$body, "\n\n", fixed = TRUE)[[1]]
  expect_identical(utils::tail(events, 1), "data: [DONE]")
  words <- vapply(events[2:6], function(e) {
    jsonlite::fromJSON(sub("^data: ", "", e))$choices$delta$content
  }, "")
  expect_identical(paste(words, collapse = ""), "hello from the fault server")
  expect_length(fault_requests(server), 2)
})
