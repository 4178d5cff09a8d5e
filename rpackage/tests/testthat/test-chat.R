# hf_chat() and hf_inference() on remote endpoints, through Rscript and reticulate, against the
# scripted server of helper-fault-server.R: replies and their records, streaming callbacks, R
# functions as tools, classed errors, failover, and keys that never show.

fault_v1 <- function(server) paste0(server$url, "/v1")

chat_posts <- function(server) {
  Filter(function(r) grepl("/chat/completions$", r$path), fault_requests(server))
}

test_that("$chat() returns the reply with its endpoint, tries and tokens, and keeps the turns", {
  srv <- fault_server_start()
  fault_script(srv, list(list(kind = "ok", text = "fine thanks")))
  chat <- hf_chat("fault-model", endpoint = fault_v1(srv), system_prompt = "Be brief.",
                  max_tokens = 9)
  reply <- chat$chat("How are you?")
  expect_s3_class(reply, "hfbridge_reply")
  expect_identical(as.character(unclass(reply)), "fine thanks")
  expect_identical(attr(reply, "endpoint"), fault_v1(srv))
  expect_identical(attr(reply, "tries"), 1L)
  expect_true(attr(reply, "tokens_out") > 0L)
  body <- chat_posts(srv)[[1]]$body
  expect_identical(body$model, "fault-model")
  expect_identical(body$max_tokens, 9L)
  expect_identical(vapply(body$messages, `[[`, "", "role"), c("system", "user"))
  turns <- chat$get_turns()
  expect_identical(turns$role, c("user", "assistant"))
  expect_identical(turns$content, c("How are you?", "fine thanks"))
  expect_identical(turns$endpoint, c(NA, fault_v1(srv)))
  expect_identical(names(chat$get_tokens()), c("input", "output"))
  expect_output(print(reply), "fine thanks")
})

test_that("$stream() calls back once per chunk, and $clone() goes its own way", {
  srv <- fault_server_start()
  fault_script(srv, list(list(kind = "ok", text = "one two three"),
                         list(kind = "ok", text = "cloned")))
  chat <- hf_chat("fault-model", endpoint = fault_v1(srv))
  seen <- character()
  reply <- chat$stream("Count", callback = function(chunk) seen <<- c(seen, chunk))
  expect_identical(seen, c("one", " two", " three"))
  expect_identical(as.character(unclass(reply)), "one two three")
  twin <- chat$clone()
  twin$chat("again")
  expect_identical(nrow(chat$get_turns()), 2L)
  expect_identical(nrow(twin$get_turns()), 4L)
})

# The fault server, scripted to call get_weather(city = "Paris") and then to answer, and a chat
# with that R tool registered; `asked$city` is the city the tool was asked about.
weather_on_fault_server <- function(env = parent.frame()) {
  srv <- fault_server_start(env)
  fault_script(srv, list(
    list(kind = "tool_call", name = "get_weather", arguments = list(city = "Paris")),
    list(kind = "ok", text = "Sunny in Paris.")))
  asked <- new.env()
  weather <- hf_tool(function(city) {
    asked$city <- city
    list(city = city, forecast = "sunny")
  }, "get_weather", "The weather in a city.",
  list(type = "object", properties = list(city = list(type = "string")),
       required = list("city")))
  chat <- hf_chat("fault-model", endpoint = fault_v1(srv))
  chat$register_tool(weather)
  list(srv = srv, chat = chat, asked = asked)
}

test_that("NA and empty stop strings are refused, a vector of them is sent", {
  srv <- fault_server_start()
  fault_script(srv, list(list(kind = "ok", text = "fine")))
  for (stop in list(NA_character_, "", c("x", NA), character(0))) {
    expect_error(hf_chat("fault-model", endpoint = fault_v1(srv), stop = stop),
                 "`stop` must", class = "hfbridge_error_invalid_argument")
  }
  chat <- hf_chat("fault-model", endpoint = fault_v1(srv), stop = c("x", "y"))
  expect_error(chat$chat("Hi", tool_choice = NA_character_), "`tool_choice` must not be NA",
               class = "hfbridge_error_invalid_argument")
  chat$chat("Hi")
  expect_identical(chat_posts(srv)[[1]]$body$stop, list("x", "y"))
  expect_identical(nrow(chat$get_turns()), 2L)
})

test_that("a $chat_structured() reply that is not JSON leaves the turns as they were", {
  srv <- fault_server_start()
  fault_script(srv, list(list(kind = "ok", text = "fine"), list(kind = "ok", text = "not json")))
  chat <- hf_chat("fault-model", endpoint = fault_v1(srv))
  chat$chat("Hello")
  expect_error(chat$chat_structured("Rate it.", schema = list(type = "object")), "not JSON",
               class = "hfbridge_error_validation")
  expect_identical(chat$get_turns()$content, c("Hello", "fine"))
})

test_that("an R function registered as a tool is called, and its result sent back", {
  fx <- weather_on_fault_server()
  srv <- fx$srv
  chat <- fx$chat
  expect_identical(as.character(unclass(chat$chat("Weather in Paris?"))), "Sunny in Paris.")
  expect_identical(fx$asked$city, "Paris")
  posts <- chat_posts(srv)
  expect_identical(posts[[1]]$body$tools[[1]]$`function`$name, "get_weather")
  tool_turn <- posts[[2]]$body$messages[[3]]
  expect_identical(tool_turn$role, "tool")
  expect_identical(jsonlite::fromJSON(tool_turn$content),
                   list(city = "Paris", forecast = "sunny"))
  expect_identical(chat$get_turns()$role, c("user", "assistant", "tool", "assistant"))
})

test_that("a tool's data frame goes as its rows; a result JSON cannot hold rolls the turns back", {
  srv <- fault_server_start()
  call_weather <- list(kind = "tool_call", name = "get_weather",
                       arguments = list(city = "Paris"))
  fault_script(srv, list(call_weather, list(kind = "ok", text = "Rain tomorrow."), call_weather))
  result <- data.frame(day = 1:2, sky = factor(c("sun", "rain")),
                       date = as.Date(c("2024-05-01", NA)), mm = c(0, 2.5))
  chat <- hf_chat("fault-model", endpoint = fault_v1(srv))
  chat$register_tool(hf_tool(function(city) result, "get_weather", "The weather."))
  chat$chat("Weather in Paris?")
  sent <- chat_posts(srv)[[2]]$body$messages[[3]]$content
  expect_identical(sent, paste0('[{"day": 1, "sky": "sun", "date": "2024-05-01", "mm": 0}, ',
                                '{"day": 2, "sky": "rain", "date": null, "mm": 2.5}]'))
  expect_identical(jsonlite::fromJSON(sent)$sky, c("sun", "rain"))
  before <- chat$get_turns()
  result <- function() "a function is no JSON"
  expect_error(chat$chat("And tomorrow?"), "cannot be sent to the model as JSON",
               class = "hfbridge_error_invalid_argument")
  expect_identical(chat$get_turns(), before)  # no dangling tool call
})

test_that("a stream reads tool calls from their deltas, runs the R tool and streams the answer", {
  fx <- weather_on_fault_server()
  srv <- fx$srv
  chat <- fx$chat
  seen <- character()
  reply <- chat$stream("Weather in Paris?", callback = function(chunk) seen <<- c(seen, chunk))
  expect_identical(fx$asked$city, "Paris")  # its arguments came in 8-character deltas
  expect_identical(seen, c("Sunny", " in", " Paris."))
  expect_identical(as.character(unclass(reply)), "Sunny in Paris.")
  posts <- chat_posts(srv)
  expect_true(isTRUE(posts[[1]]$body$stream))
  expect_identical(posts[[1]]$body$tools[[1]]$`function`$name, "get_weather")
  expect_identical(jsonlite::fromJSON(posts[[2]]$body$messages[[3]]$content),
                   list(city = "Paris", forecast = "sunny"))
  turns <- chat$get_turns()
  expect_identical(turns$role, c("user", "assistant", "tool", "assistant"))
  expect_match(turns$tool_calls[[2]], "get_weather")
})

test_that("errors are classed, client errors never fail over, and the chain reports each", {
  srv <- fault_server_start()
  fault_script(srv, list(list(kind = "status", status = 429L, retry_after = 0L),
                         list(kind = "status", status = 429L, retry_after = 0L)))
  chat <- hf_chat("m", endpoints = list(hf_endpoint(fault_v1(srv), retries = 1L)))
  err <- expect_error(chat$chat("hi"), class = "hfbridge_error_rate_limit")
  expect_identical(err$retry_after, 0)
  expect_identical(nrow(chat$get_turns()), 0L)

  fault_script(srv, list(list(kind = "status", status = 422L, message = "bad")))
  chain <- list(fault_v1(srv), fault_v1(srv))
  expect_error(hf_chat("m", endpoints = chain)$chat("hi"), class = "hfbridge_error_validation")
  expect_length(chat_posts(srv), 3L)

  fault_script(srv, list(list(kind = "context_length")))
  expect_error(hf_chat("m", endpoint = fault_v1(srv))$chat("hi"),
               class = "hfbridge_error_context_length")

  fault_script(srv, list(list(kind = "status", status = 503L)))
  chain <- list(hf_endpoint("http://127.0.0.1:9/v1", retries = 0L),
                hf_endpoint(fault_v1(srv), retries = 0L))
  err <- expect_error(hf_chat("m", endpoints = chain)$chat("hi"),
                      class = "hfbridge_error_unreachable")
  expect_length(err$errors, 2L)

  fault_script(srv, list(list(kind = "status", status = 503L), list(kind = "ok", text = "b")))
  chain[[2]] <- hf_endpoint(fault_v1(srv), retries = 1L)
  reply <- hf_chat("m", endpoints = chain)$chat("hi")
  expect_identical(attr(reply, "endpoint"), fault_v1(srv))
  expect_identical(attr(reply, "tries"), 3L)
})

test_that("the HF token goes to no other host, an endpoint key goes to its endpoint, none shows", {
  srv <- fault_server_start()
  withr::local_envvar(HF_TOKEN = "hf_faketokenfaketoken1234",
                      HFB_TEST_KEY = "endpoint-secret-key")
  hf_chat("m", endpoint = fault_v1(srv))$chat("hi")
  chat <- hf_chat("m", endpoints = list(hf_endpoint(fault_v1(srv), api_key_env = "HFB_TEST_KEY")))
  chat$chat("hi")
  auth <- vapply(chat_posts(srv), function(r) r$headers$authorization %||% "(none)", "")
  expect_identical(auth, c("(none)", "Bearer endpoint-secret-key"))
  fault_script(srv, list(list(kind = "status", status = 401L, message = "endpoint-secret-key")))
  err <- expect_error(chat$chat("again"), class = "hfbridge_error_auth")
  shown <- c(conditionMessage(err), format(chat), unlist(chat$get_turns()),
             format(hf_endpoint(fault_v1(srv), api_key = "endpoint-secret-key")))
  expect_false(any(grepl("endpoint-secret-key|hf_faketoken", shown)))
})

test_that("hf_inference() returns the local pipelines' shapes, with the record", {
  srv <- fault_server_start()
  fault_script(srv, list(
    list(kind = "ok", json = list(list(list(label = "POSITIVE", score = 0.9),
                                       list(label = "NEGATIVE", score = 0.1)))),
    list(kind = "ok", json = list(c(0.5, 0.25), c(1, 2)))))
  labels <- hf_inference("text-classification", "good", endpoint = srv$url)
  expect_identical(names(labels), c("text_id", "text", "label", "score"))
  expect_identical(labels$label, "POSITIVE")
  expect_identical(attr(labels, "tries"), 1L)
  m <- hf_inference("feature-extraction", c("a", "b"), endpoint = srv$url)
  expect_identical(dim(m), c(2L, 2L))
  expect_identical(as.vector(m), c(0.5, 1, 0.25, 2))
  expect_error(hf_inference("text-generation", NA_character_, endpoint = srv$url),
               class = "hfbridge_error_invalid_argument")
  expect_error(hf_inference("text-generation", "x", endpoint = srv$url, provider = "auto"),
               class = "hfbridge_error_invalid_argument")
})

test_that("hf_inference() takes pipeline()'s text-generation arguments, or says why not", {
  srv <- fault_server_start()
  fault_script(srv, list(list(kind = "ok", json = list(list(generated_text = "th")))))
  out <- hf_inference("text-generation", "Once", endpoint = srv$url, stop_sequence = "e",
                      max_new_tokens = 5)
  expect_identical(out$generated_text, "th")
  params <- fault_requests(srv)[[1]]$body$parameters
  expect_identical(params$stop, list("e"))
  expect_identical(params$max_new_tokens, 5L)
  expect_error(hf_inference("text-generation", "Once", endpoint = srv$url,
                            num_return_sequences = 2), "one text per prompt",
               class = "hfbridge_error_unsupported")
  expect_error(hf_inference("text-generation", "Once", endpoint = srv$url, foo = 1),
               "no argument `foo`", class = "hfbridge_error_invalid_argument")
  expect_length(fault_requests(srv), 1L)
})
