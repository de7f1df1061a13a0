"""Codes of the window's keys that are not letters (as ``cv2.waitKey`` returns them)."""
KEY_ESC, KEY_ENTER, KEY_RETURN, KEY_BACKSPACE, KEY_DELETE = 27, 13, 10, 8, 127
