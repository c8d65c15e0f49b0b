from switchboard.extract import extract_paths, looks_like_placeholder


def test_absolute_and_home_paths_in_order() -> None:
    assert extract_paths("move /tmp/a.txt to ~/Documents/b.txt.") == ["/tmp/a.txt", "~/Documents/b.txt"]


def test_quoted_path_keeps_its_spaces() -> None:
    assert extract_paths('list "/tmp/my files" please') == ["/tmp/my files"]


def test_trailing_punctuation_is_not_part_of_a_path() -> None:
    assert extract_paths("What is in /srv/data?") == ["/srv/data"]


def test_words_with_slashes_are_not_paths() -> None:
    assert extract_paths("read and/or write 1/2 of it") == []


def test_placeholders() -> None:
    assert looks_like_placeholder("/path/to/file")
    assert looks_like_placeholder("<your file>")
    assert looks_like_placeholder("")
    assert not looks_like_placeholder("/home/ana/report.pdf")
    assert not looks_like_placeholder(3)
