// Fuzz target: the metrics endpoint's request handling and text format
// (common/metrics_http.h).
//
// The input is the bytes a scraper sent: MetricsHttpResponse must answer
// with one HTTP/1.1 status line of 200, 400, 404 or 405, headers ending in
// an empty line, and a Content-Length that is the body's (HEAD: of the body
// a GET gets, none sent). The input is also a metric's name (its first
// line) and a label value (the rest): PrometheusText must still write
// exactly its HELP, TYPE and sample lines, with a valid metric name.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "common/metrics_http.h"
#include "glog/logging.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

constexpr char kBody[] = "ps_up 1\n";

void CheckResponse(absl::string_view request) {
  bool rendered = false;
  const std::string response = ps::MetricsHttpResponse(request, [&rendered] {
    rendered = true;
    return std::string(kBody);
  });
  CHECK(absl::StartsWith(response, "HTTP/1.1 ")) << response;
  const absl::string_view code = absl::string_view(response).substr(9, 3);
  CHECK(code == "200" || code == "400" || code == "404" || code == "405")
      << response;
  CHECK_EQ(rendered, code == "200");
  const size_t head_end = response.find("\r\n\r\n");
  CHECK_NE(head_end, std::string::npos);
  const absl::string_view body =
      absl::string_view(response).substr(head_end + 4);
  const absl::string_view head =
      absl::string_view(response).substr(0, head_end);
  const size_t at = head.find("\r\nContent-Length: ");
  CHECK_NE(at, absl::string_view::npos);
  absl::string_view length = head.substr(at + 18);
  length = length.substr(0, length.find("\r\n"));
  size_t n = 0;
  CHECK(absl::SimpleAtoi(length, &n)) << head;
  const absl::string_view line =
      request.substr(0, request.find_first_of("\r\n"));
  const std::vector<absl::string_view> words =
      absl::StrSplit(line, ' ', absl::SkipEmpty());
  const bool head_only = !words.empty() && words[0] == "HEAD";
  CHECK_EQ(body.size(), head_only && code == "200" ? 0 : n) << response;
  if (code == "200" && !head_only) CHECK_EQ(body, kBody);
}

void CheckText(absl::string_view input) {
  const size_t nl = input.find('\n');
  const absl::string_view name = input.substr(0, nl);
  const absl::string_view value =
      nl == absl::string_view::npos ? "" : input.substr(nl + 1);
  ps::PrometheusText text;
  text.Add(name, "gauge", "fuzzed", {{std::string(name), std::string(value)}},
           static_cast<double>(input.size()) / 3);
  const std::vector<absl::string_view> lines =
      absl::StrSplit(text.text(), '\n');
  CHECK_EQ(lines.size(), 4u) << text.text();  // 3 lines and the end
  CHECK(lines[3].empty());
  const std::string metric = ps::PrometheusName(name);
  CHECK(!metric.empty());
  for (char c : metric) {
    CHECK(absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_' ||
          c == ':');
  }
  CHECK(!absl::ascii_isdigit(static_cast<unsigned char>(metric[0])));
  CHECK(absl::StartsWith(lines[2], metric + "{")) << lines[2];
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  ps::fuzz::QuietLogs();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view input(reinterpret_cast<const char*>(data), size);
  CheckResponse(input);
  CheckText(input);
  return 0;
}
