// Prometheus metrics over HTTP (common/metrics_http.h): a real socket on
// loopback serves the render function's text at /metrics, refuses other
// paths, methods and malformed requests with the right status, and the
// text format helpers write valid names, escaped labels and one HELP/TYPE
// per metric.
#include "common/metrics_http.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <limits>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/metrics_log.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace ps {
namespace {

using ::testing::EndsWith;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;
using testing_util::StatusIs;

// Sends `request` to 127.0.0.1:port and returns the whole response.
std::string Exchange(int port, const std::string& request) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return "connect failed";
  }
  send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  shutdown(fd, SHUT_WR);
  std::string response;
  char buffer[4096];
  ssize_t n;
  while ((n = recv(fd, buffer, sizeof(buffer), 0)) > 0) {
    response.append(buffer, static_cast<size_t>(n));
  }
  close(fd);
  return response;
}

TEST(MetricsHttpTest, ServesTheRenderedTextAtSlashMetrics) {
  std::atomic<int> renders{0};
  auto server = MetricsHttpServer::Start("127.0.0.1:0", [&renders] {
    ++renders;
    return absl::StrCat("ps_up ", renders.load(), "\n");
  });
  ASSERT_TRUE(server.ok()) << server.status();
  const int port = (*server)->port();
  ASSERT_GT(port, 0);
  std::string r = Exchange(port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_THAT(r, StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_THAT(r, HasSubstr("Content-Type: text/plain; version=0.0.4"));
  EXPECT_THAT(r, HasSubstr("Content-Length: 8\r\n"));
  EXPECT_THAT(r, EndsWith("\r\n\r\nps_up 1\n"));
  // Fresh at every scrape; a query string is ignored.
  r = Exchange(port, "GET /metrics?x=1 HTTP/1.0\r\n\r\n");
  EXPECT_THAT(r, EndsWith("ps_up 2\n"));
  r = Exchange(port, "HEAD /metrics HTTP/1.1\r\n\r\n");
  EXPECT_THAT(r, StartsWith("HTTP/1.1 200 OK"));
  EXPECT_THAT(r, EndsWith("\r\n\r\n"));

  EXPECT_THAT(Exchange(port, "GET / HTTP/1.1\r\n\r\n"),
              StartsWith("HTTP/1.1 404 Not Found"));
  EXPECT_THAT(Exchange(port, "POST /metrics HTTP/1.1\r\n\r\n"),
              StartsWith("HTTP/1.1 405"));
  EXPECT_THAT(Exchange(port, "hello\r\n\r\n"), StartsWith("HTTP/1.1 400"));
  EXPECT_THAT(Exchange(port, ""), StartsWith("HTTP/1.1 400"));
  // Still serving after the bad ones.
  EXPECT_THAT(Exchange(port, "GET /metrics HTTP/1.1\r\n\r\n"),
              StartsWith("HTTP/1.1 200 OK"));
  server->reset();  // stops and joins
  EXPECT_EQ(Exchange(port, "GET /metrics HTTP/1.1\r\n\r\n"), "connect failed");
}

// The answer alone, without a socket (what the metrics_http fuzz target
// drives): render runs only for a request it answers with the metrics.
TEST(MetricsHttpTest, ResponseToRequestBytes) {
  int renders = 0;
  auto render = [&renders] {
    ++renders;
    return std::string("ps_up 1\n");
  };
  EXPECT_EQ(MetricsHttpResponse("HEAD /metrics HTTP/1.1\r\n\r\n", render),
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; "
            "charset=utf-8\r\nContent-Length: 8\r\nConnection: "
            "close\r\n\r\n");
  EXPECT_THAT(MetricsHttpResponse("GET /metrics HTTP/1.1", render),
              EndsWith("\r\n\r\nps_up 1\n"));
  EXPECT_EQ(renders, 2);
  // Cut short before the version, extra words, or no line at all.
  EXPECT_THAT(MetricsHttpResponse("GET /metrics", render),
              StartsWith("HTTP/1.1 400"));
  EXPECT_THAT(MetricsHttpResponse("GET /metrics HTTP/1.1 x\r\n", render),
              StartsWith("HTTP/1.1 400"));
  EXPECT_THAT(MetricsHttpResponse("\r\nGET /metrics HTTP/1.1", render),
              StartsWith("HTTP/1.1 400"));
  EXPECT_THAT(MetricsHttpResponse("PUT /metrics HTTP/1.1", render),
              StartsWith("HTTP/1.1 405"));
  EXPECT_THAT(MetricsHttpResponse("GET /metricsx HTTP/1.1", render),
              StartsWith("HTTP/1.1 404"));
  EXPECT_EQ(renders, 2);
}

TEST(MetricsHttpTest, BadOrTakenAddressesAreNamed) {
  auto bad = MetricsHttpServer::Start("localhost:http-ish", [] { return ""; });
  EXPECT_THAT(bad, StatusIs(absl::StatusCode::kInvalidArgument,
                            HasSubstr("localhost:http-ish")));
  auto first = MetricsHttpServer::Start("127.0.0.1:0", [] { return ""; });
  ASSERT_TRUE(first.ok());
  const std::string taken = absl::StrCat("127.0.0.1:", (*first)->port());
  auto second = MetricsHttpServer::Start(taken, [] { return ""; });
  EXPECT_THAT(second,
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr(taken)));
  // ":port" listens on every interface.
  auto any = MetricsHttpServer::Start(":0", [] { return "x 1\n"; });
  ASSERT_TRUE(any.ok()) << any.status();
  EXPECT_THAT(Exchange((*any)->port(), "GET /metrics HTTP/1.1\r\n\r\n"),
              EndsWith("x 1\n"));
}

TEST(PrometheusTextTest, NamesLabelsAndValuesAreValid) {
  PrometheusText text;
  text.Add("ps.rows-total", "gauge", "rows", {{"table", "a\"b\\c\nd"}}, 5);
  text.Add("ps.rows-total", "gauge", "rows", {{"table", "e"}}, 2.5);
  text.Add("1st", "counter", "first", {}, std::nan(""));
  text.Add("inf", "gauge", "inf", {}, -std::numeric_limits<double>::infinity());
  EXPECT_EQ(text.text(),
            "# HELP ps_rows_total rows\n# TYPE ps_rows_total gauge\n"
            "ps_rows_total{table=\"a\\\"b\\\\c\\nd\"} 5\n"
            "ps_rows_total{table=\"e\"} 2.5\n"
            "# HELP _1st first\n# TYPE _1st counter\n_1st NaN\n"
            "# HELP inf inf\n# TYPE inf gauge\ninf -Inf\n");
}

// Values are exact: a counter past 10^6 must not lose digits (rate() would
// move in steps), and a fraction reads back to the same double.
TEST(PrometheusTextTest, ValuesAreExact) {
  PrometheusText text;
  text.Add("a", "counter", "a", {}, 123456789);
  text.Add("b", "counter", "b", {}, 9007199254740991.0);  // 2^53 - 1
  text.Add("c", "gauge", "c", {}, 0.1);
  text.Add("d", "gauge", "d", {}, -2.5e-7);
  text.Add("e", "gauge", "e", {}, 1.0 / 3);
  text.Add("f", "gauge", "f", {}, 1e300);
  EXPECT_EQ(text.text(),
            "# HELP a a\n# TYPE a counter\na 123456789\n"
            "# HELP b b\n# TYPE b counter\nb 9007199254740991\n"
            "# HELP c c\n# TYPE c gauge\nc 0.1\n"
            "# HELP d d\n# TYPE d gauge\nd -2.5e-07\n"
            "# HELP e e\n# TYPE e gauge\ne 0.3333333333333333\n"
            "# HELP f f\n# TYPE f gauge\nf 1e+300\n");
  EXPECT_EQ(FormatMetricNumber(-0.0), "0");
  EXPECT_EQ(FormatMetricNumber(-42), "-42");
}

TEST(PrometheusTextTest, LatestMetricsOfALogBecomeGauges) {
  auto log = MetricsLog::InMemory();
  log->Write("train", {{"step", 10}, {"auc", 0.5}});
  log->Write("eval", {{"auc", 0.7}});
  log->Write("train", {{"step", 20}, {"auc", 0.75}});
  const std::string text =
      LatestAsPrometheus("ps_worker", log->Latest(), {{"worker", "3"}});
  EXPECT_THAT(text, HasSubstr("ps_worker_train_step{worker=\"3\"} 20\n"));
  EXPECT_THAT(text, HasSubstr("ps_worker_train_auc{worker=\"3\"} 0.75\n"));
  EXPECT_THAT(text, HasSubstr("ps_worker_eval_auc{worker=\"3\"} 0.7\n"));
  EXPECT_THAT(text, Not(HasSubstr("} 10\n")));
}

}  // namespace
}  // namespace ps
