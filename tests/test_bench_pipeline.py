"""The pipeline benchmark's summary over rounds: each product figure against the floor of its own round."""

from bench.pipeline import Result, summary


def _result(name: str, rate: float, latencies: list[float]) -> Result:
    return Result(name, 100, 100, 100 / rate, latencies, 0.0, 0.0, 0.0)


def test_the_summary_takes_each_ratio_against_the_floor_of_the_same_round():
    rounds = []
    for floor_rate, product_rate, floor_p99, product_p99 in ((100, 150, 2.0, 10.0), (50, 100, 5.0, 10.0),
                                                             (200, 50, 2.0, 4.0)):
        floor, paced_floor = _result("floor, burst", floor_rate, [1.0]), _result("floor, paced", 100, [floor_p99])
        rounds.append([(floor, None), (paced_floor, None), (_result("product, burst", product_rate, [1.0]), floor),
                       (_result("product, paced", 100, [product_p99]), paced_floor)])

    lines = summary(rounds)

    assert len(lines) == 4
    assert lines[0].startswith("floor, burst") and "x floor" not in lines[0]
    # throughput ratios per round 1.5, 2.0, 0.25: their median, not the ratio of the medians (100 / 100)
    assert "1.50 [0.25 – 2.00]x floor" in lines[2]
    assert "100 [50 – 150] msgs/s" in lines[2]
    # p99 multiples per round 5, 2, 2
    assert "p99 2.0 [2.0 – 5.0]x floor" in lines[3]
