"""Every message the command line prints (``tracer`` and ``tracer serve``), in English
and Simplified Chinese, by key; ``msg`` formats one, ``both`` the pair a ``TracerError``
carries."""

from __future__ import annotations

MESSAGES: dict[str, dict[str, str]] = {
    "en": {
        # tracer (cli.py)
        "error": "tracer: error: {msg}",
        "warning": "tracer: warning: {msg}",
        "internal": "tracer: internal error: {msg} (a bug; set TRACER_DEBUG=1 to see the traceback)",
        "no_tui_tty": "tracer: note: stdout is not a terminal, printing the text ladder instead of the TUI",
        "no_tui_missing": "tracer: note: the interactive UI is not available, printing the text ladder",
        "usage": "{msg}",
        "pcapng_tty": "refusing to write binary pcapng to a terminal; use -o FILE",
        "cannot_write": "cannot write {path}: {why}",
        "cannot_read": "cannot read {path}: {why}",
        "bad_stream": "--stream must be a TCP stream index >= 0, got {value}",
        "bad_packet": "{path} has packets 1 to {count}; there is no packet {no}",
        "bad_timeout": "--timeout must be a number of seconds > 0, got {value}",
        "saved": "tracer: saved {path} ({count} packets, {calls} socket calls, "
        "{states} kernel socket states)",
        "interrupted": "tracer: interrupted: the capture so far was saved to {path}",
        "no_expect": "scenario {name} has no EXPECT to check against",
        "bad_expect": "scenario {name}: EXPECT {why}",
        "check_ok": "tracer: check: {name} behaves as expected ({detail})",
        "check_failed": "tracer: check: {name} did NOT behave as expected",
        "trace_no_client": "tracer trace needs a client: --client 'CMD' or -- PROGRAM [ARG...]",
        "trace_two_clients": "tracer trace takes --client 'CMD' or -- PROGRAM [ARG...], not both",
        "no_stream": "{path} has {n} TCP stream(s), numbered from 0; there is no stream {value}",
        "lesson_needs_tui": "{flag} needs the interactive UI on a terminal (or in a browser: tracer serve); "
        "for a file, see: tracer export --format svg|markdown",
        # tracer serve (serve.py)
        "serving": "tracer: serving {what} at {url} (Ctrl-C stops)",
        "open_to_all": "every host on the network can open it and drive the app: {url}",
        "stopped": "tracer: stopped serving",
        "bad_target": "tracer serve serves 'run NAME' or 'replay FILE', not {word!r}",
        "not_served": "{opt} does not apply to tracer serve (the browser shows the interactive UI)",
        "bad_port": "--port must be between 1 and 65535, got {port}",
        "port_busy": "port {port} on {host} is already in use; choose another: tracer serve --port {other}",
        "port_root": "port {port} needs root; choose one above 1023: tracer serve --port {other}",
        "bad_host": "cannot listen on {host}: {why}",
        "no_capture": "the demo capture {path} is missing; give one: tracer serve replay FILE",
    },
    "zh": {
        # tracer (cli.py)
        "error": "tracer: 错误: {msg}",
        "warning": "tracer: 警告: {msg}",
        "internal": "tracer: 内部错误: {msg}（这是程序缺陷；设置 TRACER_DEBUG=1 可查看调用栈）",
        "no_tui_tty": "tracer: 提示: 标准输出不是终端，改为打印文本阶梯图而不是交互界面",
        "no_tui_missing": "tracer: 提示: 交互界面不可用，改为打印文本阶梯图",
        "usage": "命令行用法错误：{msg}",
        "pcapng_tty": "拒绝把二进制 pcapng 写到终端；请用 -o 文件名",
        "cannot_write": "无法写入 {path}：{why}",
        "cannot_read": "无法读取 {path}：{why}",
        "bad_stream": "--stream 必须是不小于 0 的 TCP 流编号，而不是 {value}",
        "bad_packet": "{path} 中的数据包编号为 1 到 {count}；没有第 {no} 个包",
        "bad_timeout": "--timeout 必须是大于 0 的秒数，而不是 {value}",
        "saved": "tracer: 已保存 {path}（{count} 个数据包，{calls} 次套接字调用，{states} 个内核套接字状态）",
        "interrupted": "tracer: 已中断：到目前为止的抓包已保存到 {path}",
        "no_expect": "场景 {name} 没有可供检查的 EXPECT",
        "bad_expect": "场景 {name}：EXPECT {why}",
        "check_ok": "tracer: 检查：{name} 的行为符合预期（{detail}）",
        "check_failed": "tracer: 检查：{name} 的行为与预期不符",
        "trace_no_client": "tracer trace 需要一个客户端：--client '命令' 或 -- 程序 [参数...]",
        "trace_two_clients": "tracer trace 只接受 --client '命令' 或 -- 程序 [参数...] 之一，不能同时使用",
        "no_stream": "{path} 中有 {n} 个 TCP 流（从 0 开始编号）；没有编号为 {value} 的流",
        "lesson_needs_tui": "{flag} 需要在终端中运行交互界面（或在浏览器中：tracer serve）；"
        "要生成文件，请用：tracer export --format svg|markdown",
        # tracer serve (serve.py)
        "serving": "tracer: 正在提供 {what}，地址 {url}（按 Ctrl-C 停止）",
        "open_to_all": "网络上的每台主机都能打开它并操作这个应用：{url}",
        "stopped": "tracer: 已停止提供服务",
        "bad_target": "tracer serve 只能提供 'run 场景名' 或 'replay 文件'，而不是 {word!r}",
        "not_served": "{opt} 不适用于 tracer serve（浏览器里显示的是交互界面）",
        "bad_port": "--port 必须在 1 到 65535 之间，而不是 {port}",
        "port_busy": "{host} 上的端口 {port} 已被占用；请换一个：tracer serve --port {other}",
        "port_root": "端口 {port} 需要 root 权限；请选择大于 1023 的端口：tracer serve --port {other}",
        "bad_host": "无法在 {host} 上监听：{why}",
        "no_capture": "演示抓包文件 {path} 不存在；请指定一个：tracer serve replay 文件",
    },
}


def msg(key: str, lang: str, **kw: object) -> str:
    """Message ``key`` in ``lang`` (English for a language without messages), formatted."""
    return MESSAGES[lang if lang in MESSAGES else "en"][key].format(**kw)


def both(key: str, **kw: object) -> tuple[str, str]:
    """Message ``key`` in English and in Simplified Chinese, as ``TracerError`` takes them."""
    return msg(key, "en", **kw), msg(key, "zh", **kw)
