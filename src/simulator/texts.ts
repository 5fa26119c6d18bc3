/** What `--help` and `--version` print. */

export const VERSION_TEXT = `rpicam-apps build: v1.5.3 (simulated by camera-node)
rpicam-apps capabilites: egl:0 qt:0 libav:0 exif:1
libcamera build: v0.3.2+rpt20241119 (simulated)
`;

export const HELP_TEXT = `Valid options are:
  -h [ --help ]                   Print this help message
  --version                       Displays the build version number
  --list-cameras                  Lists the available cameras attached to the system.
  --camera arg (=0)               Chooses the camera to use. To list the available indexes, use the
                                  --list-cameras option.
  -v [ --verbose ] [=arg(=2)] (=1)
                                  Set verbosity level. Level 0 is no output, 1 is default, 2 is verbose.
  -o [ --output ] arg             Set the output file name
  -t [ --timeout ] arg (=5sec)    Time for which program runs. If no units are provided default to ms.
  -n [ --nopreview ]              Do not show a preview window
  --width arg (=0)                Set the output image width (0 = use default value)
  --height arg (=0)               Set the output image height (0 = use default value)
  --mode arg                      Camera mode as W:H:bit-depth:packing
  --shutter arg (=0)              Set a fixed shutter speed. If no units are provided default to us
  --gain arg (=0)                 Set a fixed gain value
  --analoggain arg (=0)           Set a fixed gain value (synonym for 'gain' option)
  --ev arg (=0)                   Set the EV exposure compensation, where 0 = no change
  --awb arg (=auto)               Set the AWB mode (auto, incandescent, tungsten, fluorescent, indoor,
                                  daylight, cloudy, custom)
  --awbgains arg (=0,0)           Set explict red and blue gains (disable the automatic AWB algorithm)
  --denoise arg (=auto)           Sets the Denoise operating mode: auto, off, cdn_off, cdn_fast, cdn_hq
  --hflip                         Request a horizontal flip transform
  --vflip                         Request a vertical flip transform
  --rotation arg (=0)             Request an image rotation, 0 or 180
  --metadata arg                  Save captured image metadata to a file or "-" for stdout
  --metadata-format arg (=json)   Format to save the metadata in, either txt or json (requires
                                  --metadata)
  -q [ --quality ] arg (=93)      Set the JPEG quality parameter
  -x [ --exif ] arg               Add these extra EXIF tags to the output file
  --timelapse arg (=0ms)          Time interval between timelapse captures. If no units are provided
                                  default to ms.
  --framestart arg (=0)           Initial frame counter value for timelapse captures
  --datetime                      Use date format for output file names
  --timestamp                     Use system timestamps for output file names
  -k [ --keypress ]               Perform capture when ENTER pressed
  -s [ --signal ]                 Perform capture when signal received
  --thumb arg (=320:240:70)       Set thumbnail parameters as width:height:quality, or none
  -e [ --encoding ] arg (=jpg)    Set the desired output encoding, either jpg, png, rgb/rgb24, rgb48,
                                  bmp or yuv420
  -r [ --raw ]                    Also save raw file in DNG format
  --latest arg                    Create a symbolic link with this name to most recent saved file
  --immediate                     Perform first capture immediately, with no preview phase
  --zsl                           Switch to zero shutter lag mode for still image capture.

Simulator settings (environment): CAMERA_SIM_SENSOR (imx477, imx708, imx219, ov5647, tiny),
CAMERA_SIM_START_MS, CAMERA_SIM_CAPTURE_MS, CAMERA_SIM_WRITE_MBPS (0 = unthrottled),
CAMERA_SIM_FAIL (no-camera, capture-error, hang, crash, slow-write), CAMERA_SIM_CONTROL (a file
whose content, when it exists, replaces CAMERA_SIM_FAIL at every run and frame).
`;
